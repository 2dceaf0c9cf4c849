-- A member may connect several presence providers at once (Microsoft Teams and Google Calendar):
-- each provider's presence is kept on its own row per avatar, and the avatar's presence_*
-- columns hold the one shown — the strongest by kind (presenting, in a call, in a meeting, do
-- not disturb or focus, busy, out of office, be right back, away), written with the rows in one
-- transaction. Taking one provider's presence off then shows the other's instead of nothing.

CREATE TABLE avatar_presences (
    space_id     TEXT NOT NULL,
    person_id    TEXT NOT NULL,
    provider     TEXT NOT NULL,
    availability TEXT NOT NULL,   -- the provider's values as received (Teams' availability, …)
    activity     TEXT NOT NULL,
    label        TEXT NOT NULL,
    emoji        TEXT NOT NULL,
    kind         TEXT NOT NULL,   -- its place in the order of precedence
    since        INTEGER NOT NULL,   -- when this kind of presence began
    PRIMARY KEY (space_id, person_id, provider),
    FOREIGN KEY (space_id, person_id) REFERENCES avatars (space_id, person_id) ON DELETE CASCADE
);
-- A group commit reads the rows of the people it changes.
CREATE INDEX avatar_presences_by_person ON avatar_presences (person_id);

ALTER TABLE avatars ADD COLUMN presence_kind TEXT;
-- Until now only Microsoft Teams showed presences: its emoji says which kind each one is.
UPDATE avatars SET presence_kind = CASE presence_emoji
        WHEN '🖥️' THEN 'presenting'
        WHEN '📞' THEN 'in_a_call'
        WHEN '📅' THEN 'in_a_meeting'
        WHEN '⛔' THEN 'do_not_disturb'
        WHEN '🔴' THEN 'busy'
        WHEN '🏝️' THEN 'out_of_office'
        WHEN '⏳' THEN 'be_right_back'
        ELSE 'away' END
    WHERE presence_provider IS NOT NULL;
INSERT INTO avatar_presences (space_id, person_id, provider, availability, activity, label, emoji, kind, since)
SELECT space_id, person_id, presence_provider, presence_availability, presence_activity, presence_label,
       presence_emoji, presence_kind, presence_since
FROM avatars
WHERE presence_provider IS NOT NULL AND presence_availability IS NOT NULL AND presence_activity IS NOT NULL
  AND presence_label IS NOT NULL AND presence_emoji IS NOT NULL AND presence_since IS NOT NULL;
