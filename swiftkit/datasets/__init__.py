"""Local datasets checked the way ms-swift will read them, and the identity (self-cognition) data.

ms-swift 4.6 picks a preprocessor from a local file's column names and silently drops rows it cannot
use (swift/dataset/preprocessor/core.py, `AutoPreprocessor`); when every row goes, the run crashes much
later with an unrelated error. `inspect_dataset` does the same column matching and row checks up front,
so a recipe fails with file:line:column instead.

Where things live:
- formats.py    the column sets ms-swift recognises, and a row -> the messages it trains on (or why dropped)
- read.py       reading JSON / JSON Lines / CSV / parquet files into numbered rows, located errors
- inspection.py inspect_dataset (the checks, all problems at once) and the token counter
- identity.py   the self-cognition template: checked, rendered with name and author into train/probe files

Pure Python on purpose: no torch, no ms-swift import (importing ms-swift takes seconds and patches
transformers). Token counting uses the `tokenizers` package directly.
"""
from __future__ import annotations

from .formats import (  # noqa: F401
    MESSAGES_COLUMNS,
    QUERY_SYNONYMS,
    RESPONSE_SYNONYMS,
    SYSTEM_SYNONYMS,
    ALPACA_COLUMNS,
    ROLE_KEYS,
    CONTENT_KEYS,
    USER_ROLES,
    ASSISTANT_ROLES,
    TOOL_CALL_ROLES,
    TOOL_RESPONSE_ROLES,
    FORMATS,
    SUPPORTED_EXTENSIONS,
    ACCEPTED_COLUMN_SETS,
    MAX_ROW_PROBLEMS,
    MESSAGE_SEP,
    detect_format,
    row_text,
)
from .read import (  # noqa: F401
    read_rows,
)
from .inspection import (  # noqa: F401
    PER_MESSAGE_OVERHEAD,
    DatasetReport,
    token_counter,
    inspect_dataset,
    conversations,
)
from .identity import (  # noqa: F401
    IDENTITY_FIELDS,
    IDENTITY_LANGS,
    IDENTITY_KINDS,
    IDENTITY_SPLITS,
    IDENTITY_VARIABLES,
    IDENTITY_TRAIN_FILE,
    IDENTITY_PROBES_FILE,
    IdentityFiles,
    load_identity_template,
    write_atomic,
    render_identity,
)
