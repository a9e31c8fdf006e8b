# Campaigns, checklists and flags arrive with the student-verification issue.
