"""Column names, in one place. Stages import these constants; no column name is spelled twice.

Document frame (one row per input record):
    ROW        input position (0-based), the key that ties every output back to its record
    DOC_ID     the record's id (from ``input.id_field``, or generated as ``<source>-<row>``)
    TEXT       the raw text, exactly as read
    ... any other input columns are carried through untouched.

Columns added by stages are listed next to the stage that adds them.
"""

from __future__ import annotations

# --- document frame -------------------------------------------------------------------------
ROW = "_row"
DOC_ID = "doc_id"
TEXT = "text"
SOURCE_LINE = "_line"  # 1-based line/record number in the source file (for messages)
DECODE_ERROR = "decode_error"  # bytes not valid in the encoding were read as Windows-1252 (or replaced)

# normalise
TEXT_NORM = "text_norm"
NORM_FIXES = "norm_fixes"  # list[str]: names of the fixers that changed something
NORM_CHANGES = "norm_changes"  # list[struct]: every change, with raw offsets
ANCHOR_NORM = "anchor_norm"  # list[i64]: offset map anchors, positions in TEXT_NORM
ANCHOR_RAW = "anchor_raw"  # list[i64]: the matching positions in TEXT

# corpus clusters
CLUSTER_ID = "cluster_id"
DUPLICATE_OF = "duplicate_of"
DUP_SIMILARITY = "duplicate_similarity"
DUP_KIND = "duplicate_kind"  # "exact" or "near"
KEPT_ROW = "_kept_row"  # ROW of the copy its cluster kept (internal)
# what the corpus stage computes from each document's text alone, when a job made it already
# (cluster.cluster_inputs; cluster_documents uses and removes them)
EXACT_KEY = "_exact_key"
SIGNATURE = "_signature"

# final
TEXT_CLEAN = "text_clean"
DROP_REASON = "drop_reason"  # null when kept

# --- passage frame (one row per passage) ----------------------------------------------------
P_INDEX = "passage"  # 0-based index within its document
P_START = "start"  # raw-text offsets [start, end)
P_END = "end"
P_NORM_START = "norm_start"  # offsets in TEXT_NORM
P_NORM_END = "norm_end"
P_KIND = "kind"  # paragraph | sentence | line | fragment | caption
P_TEXT = "passage_text"  # normalised passage text
P_WORDS = "words"
P_PARTNER = "partner"  # index of the paired passage in the same document (or null)
P_PAIR_KIND = "pair_kind"  # caption (neighbours) | repeat (apart) | null
P_ROLE = "role"  # original | rewrite | verbatim | null
P_SIMILARITY = "similarity"  # rapidfuzz similarity to the partner, 0-100
P_JACCARD = "jaccard"  # exact shingle Jaccard to the partner
P_ACTION = "action"  # keep | drop
G_SCORE = "garble_score"  # 0-1, calibrated (0.5 = even odds); null when not scored
G_LABEL = "garble_label"  # garbled | faithful | not scored
G_MODE = "garble_mode"  # paired (against its original) | unpaired (intrinsic signals only)
G_REASONS = "garble_reasons"  # list[struct]: type, raw start/end, original's raw start/end, texts, explanation

# drop reasons (documents)
REASON_EMPTY = "empty"
REASON_MALFORMED = "malformed"
REASON_EXACT = "exact_duplicate"
REASON_NEAR = "near_duplicate"
# drop reasons (passages)
REASON_CAPTION_REWRITE = "caption_rewrite"
REASON_VERBATIM_REPEAT = "verbatim_repeat"
REASON_GARBLED = "garbled"
