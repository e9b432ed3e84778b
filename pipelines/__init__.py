"""seqapps data pipelines: files decoded at the edge, fed to tf.data.

Modules: ``sources`` (folders, manifests, group-aware splits), ``windows`` (windows,
masks, delays, clip aggregation; shared by audio and video), ``audio`` and ``video``
(decoding and caches), ``synthetic`` (demo data written as real files).
"""
