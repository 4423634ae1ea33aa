"""Every copy of a person's data that lethe keeps: the inventory (`copies`), the policy that retires them
(`policy`, `apply`), and the check that the champion honours every fulfilled request (`drift`)."""

from lethe.retention.apply import RetentionReport, apply_retention
from lethe.retention.copies import Copy, Holdings, copies_of
from lethe.retention.drift import Drift, check_drift, confirm_champion
from lethe.retention.policy import RetentionPolicy, load_policy

__all__ = ["Copy", "Drift", "Holdings", "RetentionPolicy", "RetentionReport", "apply_retention",
           "check_drift", "confirm_champion", "copies_of", "load_policy"]
