"""A local Azure Batch data plane for jobs: create, get, update, terminate and, above all, delete.

Run it with ``python -m emulators.batch --port 0``; drive it from tests through ``/_emulator/``
(see ``emulators.control.BatchEmulator``). Modules: ``_model`` (jobs, config), ``_auth`` (bearer
tokens), ``_dataplane`` (validation and operations), ``_errors`` (Batch's error bodies),
``_faults`` (injected failures), ``_control`` (the control API), ``_app`` (the request handler).
"""
