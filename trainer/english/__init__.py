"""A corpus of real English text made from what the package registries serve (``ablate data english``).

FineWeb cannot be downloaded where our GPU runs happen, but Debian and npm packages can be fetched
on any of our machines, and some of them hold a lot of English: State of the Union addresses,
Moby-Dick, Jane Austen's novels, a Bible translation, dictionaries, manuals. This package turns
them into upstream-format shards (``fineweb_train_*.bin`` / ``fineweb_val_*.bin``, GPT-2 BPE):

* ``fetch``: the packages, by name, through their own clients (``apt-get download``, ``npm pack``)
  into a cache folder; nothing else touches the network.
* ``archives``: reads files out of ``.deb`` and npm ``.tgz`` archives (and dictd, SWORD and R data
  inside them) without unpacking anything to disk.
* ``clean``: markup strippers (reStructuredText, POD, HTML, OSIS, mail) and the prose score.
* ``sources``: the table of sources: which package, which files, how to read them, the licence.
* ``bpe``: GPT-2's BPE files from an npm package, checked against known hashes and token ids.
* ``build``: picks the documents, holds out a seeded validation sample from every source,
  tokenises, writes the shards and ``manifest.json``.
"""
