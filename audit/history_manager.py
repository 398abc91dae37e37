"""django-simple-history's descriptor builds a new manager class (via
Manager.from_queryset, which inspects the queryset class) on every access to
`Model.history` or `instance.history`, and the library does that on every
save. Caching the built class per queryset removes that cost from each
clinical write; behaviour is unchanged. Pass it to every HistoricalRecords."""

import functools

from simple_history.manager import HistoryManager


class CachedHistoryManager(HistoryManager):
    @classmethod
    @functools.cache
    def from_queryset(cls, queryset_class, class_name=None):
        return super().from_queryset(queryset_class, class_name)
