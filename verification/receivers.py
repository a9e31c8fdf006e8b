"""How verification reacts to what the students app announces (students/signals.py)."""


def roster_imported(sender, *, report, **kwargs):
    """New students of open campaigns get checklists; confirmed fields whose value changed reopen."""
    from . import services

    services.campaigns_sync_open()
    if report.changes:
        services.roster_changes_apply(changes=report.changes, roster_import_id=report.roster_import_id)
