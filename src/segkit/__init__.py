"""segkit: audience segmentation and segment analytics.

Describe segments in a small rule language, evaluate them against profiles and
their events, and analyse them.

>>> import segkit as sk
>>> schema = sk.Schema(attributes={"country": "string", "age": "int"})
>>> rule = sk.parse('country = "FR" and age between 29 and 44')
>>> pred = sk.compile_predicate(rule, schema)
>>> pred({"country": "FR", "age": 31})
True

.. versionadded:: 0.1.0
"""

from segkit.analysis import metrics
from segkit.analysis.attention import AttentionItem, AttentionReport
from segkit.analysis.drivers import Driver, Drivers
from segkit.analysis.funnel import (
    Exclusion,
    Funnel,
    FunnelOutcomes,
    FunnelReport,
    HistogramBin,
    Step,
    StepReport,
    TimeStats,
    Transition,
)
from segkit.analysis.hygiene import HygieneIssue, HygieneReport
from segkit.analysis.lookalike import Lookalike, LookalikeContribution, LookalikeWeight
from segkit.analysis.metrics import Comparison, ComparisonRow, Metric, MetricValue
from segkit.analysis.overlap import OverlapReport, Region
from segkit.analysis.split import SampleRatioCheck, Split
from segkit.analysis.usage import ObjectiveUsage, UsageLog
from segkit.compile.plan import Plan, compile_plan
from segkit.compile.predicate import Predicate, compile_predicate
from segkit.compile.sql import SqlQuery, to_sql, to_sql_ddl
from segkit.dsl.builder import (
    attr,
    avg_of,
    bucket,
    count_of,
    did,
    in_segment,
    max_of,
    min_of,
    sum_of,
)
from segkit.dsl.check import check
from segkit.dsl.rule import Rule, is_valid, iter_errors, parse
from segkit.engine import Engine, Explanation, MembershipChange, SegmentInfo
from segkit.errors import (
    ConflictError,
    CorruptDataError,
    RuleError,
    RuleSyntaxError,
    RuleTypeError,
    SchemaError,
    SegkitError,
    SegmentError,
    Span,
    StorageError,
    UnknownAttributeError,
    UnknownEventError,
    UnknownPropertyError,
)
from segkit.index import Members
from segkit.records import Event, IdMap, Profile
from segkit.schema import EventType, FieldType, Schema
from segkit.storage import (
    InMemoryStorage,
    MappingStorage,
    SegmentRecord,
    Snapshot,
    Storage,
    UsageRecord,
    Versioned,
)
from segkit.timeutil import Duration

__version__ = "0.1.0.dev0"

__all__ = [
    "AttentionItem",
    "AttentionReport",
    "Comparison",
    "ComparisonRow",
    "ConflictError",
    "CorruptDataError",
    "Driver",
    "Drivers",
    "Duration",
    "Engine",
    "Event",
    "EventType",
    "Exclusion",
    "Explanation",
    "FieldType",
    "Funnel",
    "FunnelOutcomes",
    "FunnelReport",
    "HistogramBin",
    "HygieneIssue",
    "HygieneReport",
    "IdMap",
    "InMemoryStorage",
    "Lookalike",
    "LookalikeContribution",
    "LookalikeWeight",
    "MappingStorage",
    "Members",
    "MembershipChange",
    "Metric",
    "MetricValue",
    "ObjectiveUsage",
    "OverlapReport",
    "Plan",
    "Predicate",
    "Profile",
    "Region",
    "Rule",
    "RuleError",
    "RuleSyntaxError",
    "RuleTypeError",
    "SampleRatioCheck",
    "Schema",
    "SchemaError",
    "SegkitError",
    "SegmentError",
    "SegmentInfo",
    "SegmentRecord",
    "Snapshot",
    "Span",
    "Split",
    "SqlQuery",
    "Step",
    "StepReport",
    "Storage",
    "StorageError",
    "TimeStats",
    "Transition",
    "UnknownAttributeError",
    "UnknownEventError",
    "UnknownPropertyError",
    "UsageLog",
    "UsageRecord",
    "Versioned",
    "__version__",
    "attr",
    "avg_of",
    "bucket",
    "check",
    "compile_plan",
    "compile_predicate",
    "count_of",
    "did",
    "in_segment",
    "is_valid",
    "iter_errors",
    "max_of",
    "metrics",
    "min_of",
    "parse",
    "sum_of",
    "to_sql",
    "to_sql_ddl",
]
