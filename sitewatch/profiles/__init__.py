"""Device profiles: schema and loading (shared by edge, ingest and simulators)."""

from sitewatch.profiles.loader import ProfileError, ProfileSet, default_profiles_dir, load_profiles
from sitewatch.profiles.model import FieldSpec, FieldType, Profile

__all__ = [
    "FieldSpec",
    "FieldType",
    "Profile",
    "ProfileError",
    "ProfileSet",
    "default_profiles_dir",
    "load_profiles",
]
