"""FeatureIndex: what each SAE feature fires on, built locally from a corpus (no Neuronpedia needed).

Building streams the corpus through the model (the forward stops at the SAE's layer), encodes every
real, non-special token (on CPU in cache-sized pieces), and keeps, on the model's device:

    top_vals, top_pos  (d_sae, K)      running top-K activations and the corpus positions they came from;
                                        only a batch's non-zero latents above the K-th best are merged in
    counts             (d_sae,)        how many tokens the feature fired on (activation > 0)
    hist               (d_sae, B + 1)  bin 0: tokens where it did not fire; bins 1..B: log-spaced activations
    tokens, doc_start                  the indexed token ids, for context windows around top examples

Documents per forward: `--batch-size`, or sized to the free GPU memory (16 on CPU); a batch that runs
out of memory is retried in halves, with one warning, and nothing is lost.

Top-K merging and the counts are associative, so a build can stop after any batch and resume from
its checkpoint to the same result. Files: `index.safetensors` + `manifest.json`, each written atomically
(`saetui.files`); the weights carry a random nonce in their safetensors metadata and the manifest names
it, so a pair from two different saves (a kill between the two writes) is recognised and never used:
`load` refuses it and `--resume` sets both files aside and starts over.

By concern: `stats` (the running top-K and histograms), `store` (the files, `FeatureIndex`, finding an index,
checkpoints), `build` (the loop over the corpus, batch sizing, torchrun). This package re-exports their public names.
"""

from __future__ import annotations

from saetui.sae.index.build import build_index, docs_per_batch, estimate_docs, piece_rows
from saetui.sae.index.stats import IndexBuilder
from saetui.sae.index.store import (INDEX_FILE, MANIFEST_FILE, Example, FeatureIndex, IndexPlace, default_index_dir,
                                    find_index, index_identity)
from saetui.settings import IndexSettings

__all__ = ["INDEX_FILE", "MANIFEST_FILE", "Example", "FeatureIndex", "IndexBuilder", "IndexPlace", "IndexSettings",
           "build_index", "default_index_dir", "docs_per_batch", "estimate_docs", "find_index", "index_identity",
           "piece_rows"]
