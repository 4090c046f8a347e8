"""Coordinated representations: one embedding space per modality, trained (or bridged) to agree.

Training side: contrastive losses, towers, zero-shot evaluation. Search side (docs/search.md): the
shared :class:`~polymodal.coordinated.embedders.Embedder` interface, a persistent FAISS index over
media files (``index.py``), media collection (``media.py``), the offline label bridge (``bridge.py``)
and the ``polymodal index / search / serve`` commands (``cli.py``, ``serve.py``).
"""
