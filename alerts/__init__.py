"""Safety alerts: rules evaluated on readings and gateway status, the alert lifecycle,
its tamper-evident history and the outputs (MQTT, InfluxDB, notifiers)."""
