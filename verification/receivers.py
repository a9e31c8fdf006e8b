"""How verification reacts to what the students app announces (students/signals.py)."""


def roster_imported(sender, *, report, **kwargs):
    """New students of open campaigns get checklists; confirmed fields whose value changed reopen."""
    from . import services

    services.campaigns_sync_open()
    # A student who changed department or class is counted there from now on.
    services.checklist_scope_sync()
    if report.changes:
        services.roster_changes_apply(changes=report.changes, roster_import_id=report.roster_import_id)


SCOPE_FIELDS = {"department", "class_group", "cohort", "department_id", "class_group_id", "cohort_id"}


def student_saved(sender, *, instance, created, update_fields=None, **kwargs):
    """A student moved by hand (admin, API): their checklists follow, for the dashboards' counts."""
    from . import services

    if not created and (update_fields is None or SCOPE_FIELDS & set(update_fields)):
        services.checklist_scope_sync(student_ids=[instance.pk])


def photos_imported(sender, *, kind, changes, added, **kwargs):
    """A different photo reopens the students' answers on it; a first photo is one more thing to check."""
    from . import services

    services.photo_changes_apply(changes=changes, added=added)


def keys_rotated(sender, **kwargs):
    """Stored exports are encrypted with the ID-number keys: re-encrypt them under the new one."""
    from .exports import services, storage

    return "stored export files", storage.rotate_folder(services.export_dir())
