"""Every name of the HDF5 layout lives here and in docs/schema.md; nothing else spells them."""

FORMAT = "rankgen"
SCHEMA_VERSION = 1

# Root attributes.
ATTR_FORMAT = "format"
ATTR_VERSION = "schema_version"
ATTR_KIND = "kind"
ATTR_RANKGEN_VERSION = "rankgen_version"
ATTR_COMMAND = "command"
ATTR_SEED = "seed"
ATTR_RECIPE = "recipe"
ATTR_PARAMS = "params"
ATTR_FINGERPRINT = "fingerprint"
ATTR_COMMITTED = "n_committed"
ATTR_COMPLETE = "complete"
ATTR_N_ITEMS = "n_items"
ATTR_SKIPPED = "skipped"       # JSON list of skipped sources with reasons
ATTR_JOBS_DONE = "jobs_done"   # sources done so far (resume bookkeeping of rankgen.pipeline)
ATTR_CHECKSUMS = "checksums"   # JSON: sha256 of every items/ column and tables/ dataset

# Groups of the file.
ITEMS = "items"          # one 1-D dataset per per-item column, all of length n_items
RAGGED = "ragged"        # ragged/<name>/{data, offset, shape}: one variable-shape array per item
TABLES = "tables"        # anything else: groups, name tables, references
DATA, OFFSET, SHAPE, CRC = "data", "offset", "shape", "crc32"  # crc32 of each item's raw bytes

# Tables shared by every kind that ranks.
GROUPS = "groups"        # (G, L) int64 item indices; column j's target >= column j+1's; -1 pads

KINDS = ("distort", "crops", "density", "annotate")

PARTIAL_SUFFIX = ".partial"

# Key in the `params` attribute: [I, N] for a shard written with --shard I/N, absent or null otherwise.
SHARD_PARAM = "shard"
