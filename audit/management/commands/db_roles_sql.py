"""Print the PostgreSQL role script (audit.db_roles) for this deployment's
names; pipe it to psql as a superuser: `manage.py db_roles_sql | psql ...`."""

from django.core.management.base import BaseCommand

from audit.db_roles import db_roles_sql


class Command(BaseCommand):
    help = "Print the SQL that splits the database owner from the application's role."

    def add_arguments(self, parser):
        parser.add_argument("--owner", default="psyfi_owner", help="Role that owns the tables (migrations)")
        parser.add_argument("--app", default="psyfi_app", help="Role the web, workers and beat log in as")
        parser.add_argument("--database", default="psyfi", help="The application's database")

    def handle(self, *args, owner, app, database, **options):
        self.stdout.write(db_roles_sql(owner=owner, app=app, database=database), ending="")
