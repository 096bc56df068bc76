"""influxdb."""
