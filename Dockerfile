# One image for every SiteWatch service; docker-compose picks the subcommand.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SITEWATCH_PROFILES_DIR=/app/device_profiles
WORKDIR /app

# The dependencies first, in a layer of their own that only pyproject.toml decides: a
# change of the code does not reinstall OpenCV and the rest.
COPY pyproject.toml ./
RUN python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
print("\n".join(p["dependencies"] + p["optional-dependencies"]["postgres"]))' \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt

# uid 1883 is also the uid the broker runs as in eclipse-mosquitto: the password and ACL
# files `sitewatch broker files` writes are the broker's own, with no root step
RUN groupadd --system --gid 1883 sitewatch \
    && useradd --system --uid 1883 --gid 1883 --home /var/lib/sitewatch sitewatch \
    && mkdir -p /var/lib/sitewatch /data /mosquitto/auth \
    && chown sitewatch:sitewatch /var/lib/sitewatch /data /mosquitto/auth

COPY README.md ./
COPY sitewatch ./sitewatch
COPY edge ./edge
COPY ingest ./ingest
COPY alerts ./alerts
COPY api ./api
COPY dashboards ./dashboards
COPY simulators ./simulators
COPY device_profiles ./device_profiles
COPY deploy ./deploy
RUN pip install --no-cache-dir --no-deps .
USER sitewatch
ENTRYPOINT ["sitewatch"]
CMD ["--help"]
