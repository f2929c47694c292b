"""Studies: a grid of repair runs (models x scenarios x methods x seeds) in a TOML file, run by
workers into an SQLite store (:mod:`.store`; locally or on a Ray cluster, :mod:`.engine`), and a
report regenerated from the store alone (:mod:`.report`)."""

from .engine import ENGINES, run_study, status
from .imported import import_rows
from .report import write_report
from .spec import Run, Study, load_study
from .store import Store, StoredRun, export_store

__all__ = ["ENGINES", "Run", "export_store", "import_rows", "Store", "StoredRun", "Study", "load_study", "run_study",
           "status", "write_report"]
