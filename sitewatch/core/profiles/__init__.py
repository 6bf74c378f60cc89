"""Device profiles: schema and loading (shared by edge, ingest and simulators)."""

from sitewatch.core.profiles.loader import (
    ProfileError,
    ProfileSet,
    default_profiles_dir,
    load_profiles,
)
from sitewatch.core.profiles.model import FieldSpec, FieldType, Profile

__all__ = [
    "FieldSpec",
    "FieldType",
    "Profile",
    "ProfileError",
    "ProfileSet",
    "default_profiles_dir",
    "load_profiles",
]
