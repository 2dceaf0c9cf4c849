-- Google Calendar connections: a push channel is known by its id (subscription_id), its token
-- (client_state, sealed) and the resource it watches, which every push names and kehai checks;
-- and a Google sign-in may grant fewer scopes than asked (Google lets a person untick one), so
-- what was granted is kept to say what kehai may do with it.
ALTER TABLE connections ADD COLUMN subscription_resource TEXT;
ALTER TABLE connections ADD COLUMN granted_scope TEXT;
