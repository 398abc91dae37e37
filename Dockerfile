# psyfi-review: one image for the web app, the Celery worker, beat and the
# one-shot migrate (compose.yaml; docs/deployment.md, "Docker Compose").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=psyfi_review.settings_production \
    PSYFI_VAR_DIR=/var/lib/psyfi \
    STATIC_ROOT=/app/staticfiles

# psql for `manage.py dbshell` (deploy/migrate.sh applies the database roles).
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 psyfi \
    && useradd --system --uid 10001 --gid psyfi --home-dir /app --shell /usr/sbin/nologin psyfi \
    && mkdir -p /var/lib/psyfi/audit-anchors /var/lib/psyfi/beat \
    && chown -R psyfi:psyfi /var/lib/psyfi

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

# The code belongs to root and is read-only to the app's user.
COPY . .

# Static files are collected at build time with the production storage
# (hashed names, compressed; served by WhiteNoise). These values only let the
# production settings load; none is used at run time.
RUN SECRET_KEY=collectstatic-only DATABASE_URL=sqlite:////tmp/collectstatic.sqlite3 ALLOWED_HOSTS=localhost \
    PSYFI_CREDENTIALS_KEYS=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= PSYFI_IDENTIFIER_SYSTEM=urn:collectstatic \
    python manage.py collectstatic --noinput

USER psyfi
EXPOSE 8000
CMD ["gunicorn", "--config", "deploy/gunicorn.conf.py", "psyfi_review.wsgi:application"]
