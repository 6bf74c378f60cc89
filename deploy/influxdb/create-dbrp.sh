#!/bin/bash
# Runs once, after the influxdb:2 image's initial setup: map the v1 database "sitewatch"
# (what SiteWatch writes with /write?db=sitewatch and queries with InfluxQL) to the bucket.
# InfluxDB 2.1+ would map a bucket of the same name implicitly; this makes it explicit.
set -euo pipefail
bucket_id=$(influx bucket list --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | cut -f1)
influx v1 dbrp create --db "${DOCKER_INFLUXDB_INIT_BUCKET}" --rp autogen \
  --bucket-id "${bucket_id}" --default
