"""Every name of the HDF5 layout lives here and in docs/schema.md; nothing else spells them."""

FORMAT = "rankgen"
SCHEMA_VERSION = 2              # what this rankgen writes
READABLE_VERSIONS = (1, 2)      # what it reads: version 1 stored raw typed pixels under an HDF5 filter

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
ATTR_PIXEL_VERSIONS = "pixel_versions"  # distort: JSON, kernel versions and libraries the pixels depend on
ATTR_STORED_TYPES = "stored_types"      # distort: JSON list, distortions whose pixels are stored (references always are)

# Groups of the file.
ITEMS = "items"          # one 1-D dataset per per-item column, all of length n_items
RAGGED = "ragged"        # ragged/<name>/{data, offset, size, shape, crc32}: one variable-shape array per item
TABLES = "tables"        # anything else: groups, name tables, references
DATA, OFFSET, SHAPE, CRC = "data", "offset", "shape", "crc32"  # crc32 of each item's decoded (raw) bytes
SIZE = "size"            # version 2: bytes of item i's encoded form in data (version 1 derives it from shape)
STORED = "stored"        # version 2: uint8, 1 where item i's bytes are in data, 0 where it is regenerated when read

# Attributes of a ragged/<name> group (version 2): how its items are encoded and what they decode to.
ATTR_ENCODING = "encoding"      # one of ENCODINGS
ATTR_DTYPE = "dtype"            # numpy dtype string of the decoded array, e.g. "|u1", "<f4"
PNG, NONE = "png", "none"       # png: lossless PNG (uint8, 2-D or H x W x 1/3/4); none: the raw C-order bytes
ENCODINGS = (PNG, NONE)

# Tables shared by every kind that ranks.
GROUPS = "groups"        # (G, L) int64 item indices; column j's target >= column j+1's; -1 pads

KINDS = ("distort", "crops", "density", "annotate")

PARTIAL_SUFFIX = ".partial"

# Key in the `params` attribute: [I, N] for a shard written with --shard I/N, absent or null otherwise.
SHARD_PARAM = "shard"
