# Notices, help articles and reminders arrive with the notices issue.
