"""Decisions on second-source differences name their field by its CHSI code, like every other stored row."""

from django.db import migrations, models


def keys_to_codes(apps, schema_editor):
    from students import fields as roll_fields

    SourceResolution = apps.get_model("students", "SourceResolution")
    for key, field in roll_fields.BY_KEY.items():
        SourceResolution.objects.filter(field_code=key).update(field_code=field.code)


def codes_to_keys(apps, schema_editor):
    from students import fields as roll_fields

    SourceResolution = apps.get_model("students", "SourceResolution")
    for code, field in roll_fields.BY_CODE.items():
        SourceResolution.objects.filter(field_code=code).update(field_code=field.key)


class Migration(migrations.Migration):
    dependencies = [("students", "0016_student_id_number_hash_plain_index")]

    operations = [
        migrations.RemoveConstraint(model_name="sourceresolution", name="source_resolution_unique"),
        migrations.RenameField(model_name="sourceresolution", old_name="field", new_name="field_code"),
        migrations.RunPython(keys_to_codes, codes_to_keys),
        migrations.AlterField(
            model_name="sourceresolution",
            name="field_code",
            field=models.CharField(max_length=16, verbose_name="字段"),
        ),
        migrations.AddConstraint(
            model_name="sourceresolution",
            constraint=models.UniqueConstraint(
                fields=("source", "student_number", "field_code"), name="source_resolution_unique"
            ),
        ),
    ]
