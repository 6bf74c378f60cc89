# One image for every SiteWatch service; docker-compose picks the subcommand.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    SITEWATCH_PROFILES_DIR=/app/device_profiles
WORKDIR /app
COPY pyproject.toml README.md ./
COPY sitewatch ./sitewatch
COPY edge ./edge
COPY ingest ./ingest
COPY api ./api
COPY simulators ./simulators
COPY dashboards ./dashboards
COPY device_profiles ./device_profiles
COPY deploy ./deploy
RUN pip install --no-cache-dir '.[postgres]' && useradd --system --home /var/lib/sitewatch sitewatch \
    && mkdir -p /var/lib/sitewatch /data && chown sitewatch /var/lib/sitewatch /data
USER sitewatch
ENTRYPOINT ["sitewatch"]
CMD ["--help"]
