//! The demo line: a second phone on loopback that answers every call after a short ring
//! and plays a prerecorded client («Алло? Да, слушаю вас...»), so the product's main job
//! — an agent talking to a client through a script — runs with no SIP provider.
