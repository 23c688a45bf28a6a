"""composekit: safe, boring database migrations and deploys for Docker Compose + PostgreSQL.

Library first; the ``composekit`` CLI is a thin shell over this API::

    from composekit import migrations
    migrations.upgrade("postgresql://app@db/app", "migrations")
"""

__version__ = "0.3.0"
