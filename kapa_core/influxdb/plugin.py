"""The ``influxdb`` plugin: registers the [[influxdb]] section and its service."""

from __future__ import annotations

from kapa_core.config.schema import Section
from kapa_core.hookspecs import hookimpl
from kapa_core.influxdb.config import InfluxDBConfig, check_clusters
from kapa_core.influxdb.service import InfluxDBService


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="influxdb", schema=InfluxDBConfig, multiple=True,
                    element_key="name", default_elements=1, service=InfluxDBService,
                    check=check_clusters,
                    doc="InfluxDB clusters to subscribe to, query and write to.\n"
                        "kapa-core keeps running when they cannot be reached.")]
