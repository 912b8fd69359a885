"""Core: what every phase shares, imported by all and importing none of them.

Errors (:mod:`~secure_train.core.errors`), bounded file reading (:mod:`~secure_train.core.safe_io`),
the hash-chained audit log and its signed head (:mod:`~secure_train.core.audit_log`,
:mod:`~secure_train.core.audit_head`), keys and signatures (:mod:`~secure_train.core.keys`,
:mod:`~secure_train.core.signing`, :mod:`~secure_train.core.signed_file`,
:mod:`~secure_train.core.sigstore`), records (:mod:`~secure_train.core.records`) and
rank helpers (:mod:`~secure_train.core.distributed`). Modules are imported on their own
(``from secure_train.core.errors import ConfigError``); this package imports nothing.
"""
