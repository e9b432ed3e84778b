"""The defaults chosen on held-out voices (benchmarks/speaker_independence.py) and their merging."""

import json

from seqapps.runs.settings import resolve_settings


def test_audio_defaults_are_the_speaker_independent_choice():
    settings = resolve_settings("audio")
    assert settings["data"]["normalization"] == "utterance"
    assert settings["model"]["activation"] == "relu"
    assert settings["model"]["recurrent_initializer"] == "identity"
    assert settings["model"]["spec_augment"] == {}  # SpecAugment with its own defaults
    assert settings["training"]["epochs"] == 40
    # The rest of the common model section is untouched by the audio changes.
    assert settings["model"]["units"] == 128
    assert settings["model"]["pooling"] == "mean"


def test_video_keeps_the_common_model_defaults():
    settings = resolve_settings("video")
    assert settings["model"]["activation"] == "tanh"
    assert settings["model"]["recurrent_initializer"] == "orthogonal"
    assert settings["model"]["spec_augment"] is None and settings["training"]["epochs"] == 30
    assert settings["data"]["features"] == ["flow", "motion", "difference"]
    assert settings["data"]["pixel_size"] == [8, 8]


def test_a_config_file_overrides_the_kind_changes(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": {"activation": "tanh"}, "data": {"normalization": "none"}}))
    settings = resolve_settings("audio", config_file=config)
    assert settings["model"]["activation"] == "tanh"
    assert settings["model"]["recurrent_initializer"] == "identity"
    assert settings["data"]["normalization"] == "none"


def test_changes_do_not_leak_between_calls():
    first = resolve_settings("audio")
    first["model"]["activation"] = "sigmoid"
    first["data"]["normalization"] = "none"
    again = resolve_settings("audio")
    assert again["model"]["activation"] == "relu"
    assert again["data"]["normalization"] == "utterance"


def test_spec_augment_arguments_replace_the_default_and_none_turns_it_off():
    settings = resolve_settings("audio", overrides={"model": {"spec_augment": {"freq_mask_width": 2}}})
    assert settings["model"]["spec_augment"] == {"freq_mask_width": 2}
    assert resolve_settings("audio", overrides={"model": {"spec_augment": None}})["model"]["spec_augment"] is None
