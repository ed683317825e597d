"""What any function in this app would use: settings, identity, the Batch client.

Nothing here imports `delete_job` (the dependency runs one way) or the emulators.
"""

from shared.batch_client import BatchClient, BatchResponse, DeleteJobOptions
from shared.batch_errors import BatchError, BatchTransportError, InvalidRequestError
from shared.settings import Settings, SettingsError, load_settings

__all__ = [
    "BatchClient",
    "BatchError",
    "BatchResponse",
    "BatchTransportError",
    "DeleteJobOptions",
    "InvalidRequestError",
    "Settings",
    "SettingsError",
    "load_settings",
]
