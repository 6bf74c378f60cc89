"""SiteWatch: smart construction-site monitoring."""

__version__ = "0.1.0"
