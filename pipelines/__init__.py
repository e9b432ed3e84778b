"""seqapps data pipelines: files decoded at the edge, fed to tf.data.

Modules: ``sources`` (folders, manifests), ``splits`` (group-aware splits, saved splits),
``groups``, ``windows`` (windows, masks, delays, clip aggregation; shared by audio and
video), ``decode`` (audio decoder chosen by content: libsndfile or FFmpeg via PyAV),
``audio`` (decoding, waveform cache) and ``audio_dataset`` (its tf.data pipeline),
``video`` / ``video_av`` (decoding) and ``video_dataset`` (targets, tf.data pipeline),
``frame_cache`` / ``frame_cache_reader`` (frame-feature cache: writing / reading back),
``cache``, ``report`` (bad inputs, one summary per run), ``progress``, ``encode`` (media
written with FFmpeg for tests), ``synthetic_audio`` / ``synthetic_video`` (demo data as
real files). Names moved to a new module stay importable from the old one.
"""
