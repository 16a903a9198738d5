"""One error hierarchy. Every user mistake is a FairnessError whose message is one actionable line."""


class FairnessError(Exception):
    """Base class: a problem with the user's input or configuration, never a bug in the tool."""


class ConfigError(FairnessError):
    """thresholds.toml or a command-line option is invalid."""


class DatasetError(FairnessError):
    """A dataset could not be loaded or failed validation."""


class ModelError(FairnessError):
    """A model could not be built, or its predictions do not fit the dataset."""


class BudgetExhausted(ModelError):
    """An API model used up its token or spend budget; everything answered so far is cached."""


class DatasetWarning(UserWarning):
    """Something about a loaded dataset the user should know but that need not stop the run."""
