"""What the demo prints once everything is up: where each part is, how to log in, and
commands to try."""

from __future__ import annotations

from pathlib import Path

from sitewatch.programs.demo.sites import CAMERA, CAMERA_ZONE, SITE_DEVICES


def summary(
    *,
    sites: int,
    mqtt_port: int,
    broker_dir: Path,
    influx_url: str,
    api: str,
    admin_password: str,
    api_key: str,
    state: Path,
    video: Path,
    passwords: dict[str, str],
    db_url: str,
) -> str:
    """The banner: ``passwords`` holds the ``observer`` and ``monitor`` broker accounts'."""
    devices = len(SITE_DEVICES)
    return f"""
SiteWatch demo is running: {sites} simulated sites, {devices} devices and a camera each.

  MQTT broker   mqtt://127.0.0.1:{mqtt_port}      (topics sitewatch/v1/#; accounts only,
                one per gateway and service: {broker_dir})
  InfluxDB      {influx_url}   (database "sitewatch", InfluxQL on /query)
  API           {api}/docs
  latest data   {api}/sites/SITE01/latest   (API key below; or log in as admin)
  log in        admin / {admin_password}   (made for this run)
  API key       {api_key}   (viewer)
  state, logs   {state}
  camera video  {video}   (every {CAMERA}, looping; zone {CAMERA_ZONE})

Try:
  mosquitto_sub -p {mqtt_port} -u observer -P {passwords["observer"]} -t 'sitewatch/v1/#' -v
  mosquitto_sub -p {mqtt_port} -u monitor -P {passwords["monitor"]} -t 'sitewatch/v1/+/alerts' -v
                                                   (alerts as they change)
  curl -s -H 'X-API-Key: {api_key}' {api}/sites/SITE01/latest
  curl -s -H 'X-API-Key: {api_key}' '{api}/alerts?state=open'
  curl -s -H 'X-API-Key: {api_key}' {api}/sites/SITE01/camera-events
  sitewatch alerts list --database-url {db_url}
  sitewatch alerts verify --database-url {db_url}
  sitewatch deadletters --database-url {db_url}

Press Ctrl-C to stop everything.
"""
