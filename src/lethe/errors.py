"""The error hierarchy. The CLI turns any LetheError into one line and exit code 2."""


class LetheError(Exception):
    """Base of every error lethe raises on purpose (bad input, refused operation)."""


class ConfigError(LetheError):
    """Missing or invalid configuration (environment, flags, thresholds file)."""


class DataError(LetheError):
    """A data set that cannot be found, read or trusted."""


class UnknownSamplesError(DataError):
    """Sample ids or subjects that the data set does not hold."""


class EmptyForgetSetError(DataError):
    """A request that resolves to no sample at all."""


class ModelError(LetheError):
    """A model that cannot be built, loaded or verified."""


class ImportancesError(LetheError):
    """Importances that are malformed or do not belong together (method, batch size, model)."""


class EvaluationError(LetheError):
    """Evaluation that cannot be done or would be meaningless (NaN outputs, class mismatch)."""


class StorageError(LetheError):
    """An artifact that cannot be read or written."""


class IntegrityError(StorageError):
    """An artifact whose content does not match its recorded sha256."""


class RegistryError(LetheError):
    """MLflow registry problems: unknown model or version, unreachable server."""


class LedgerError(LetheError):
    """Erasure-request ledger problems: unknown request, illegal transition."""


class AuditError(LetheError):
    """Reference models that cannot be prepared or trusted (no recipe, other data, wrong version)."""


class PipelineError(LetheError):
    """A pipeline that cannot be compiled, run or submitted."""


class RepairError(LetheError):
    """A repair that cannot run: unknown method, a budget it cannot meet, data it needs and lacks."""
