"""seqapps data pipelines: files decoded at the edge, fed to tf.data.

Modules: ``sources`` (folders, manifests, group-aware splits), ``windows`` (windows,
masks, delays, clip aggregation; shared by audio and video), ``decode`` (audio decoder
chosen by content: libsndfile or FFmpeg via PyAV), ``audio`` and ``video`` / ``video_av``
(decoding and caches), ``report`` (bad inputs, one summary per run), ``progress``,
``encode`` (media written with FFmpeg for tests), ``synthetic`` (demo data as real files).
"""
