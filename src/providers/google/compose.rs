//! Composing outgoing RFC 5322 messages for `users.messages.send`.
