"""/metrics read back as Prometheus reads it (prometheus_client's parser), for tests: values
are compared as numbers, whatever their text (prometheus_client writes 7 as 7.0 and
123456789 as 1.23456789e+08)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

#: (sample name, its labels) -> value.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    """The sample's value, or None if the text has no such sample."""
    return found.get((name, frozenset(labels.items())))
