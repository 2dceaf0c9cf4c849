//! Google Calendar end to end: kehai and googleemu over HTTP on loopback — connecting (and the
//! refusals), the avatar following the calendar exactly at its boundaries, pushes, channels,
//! revocation and disconnecting.

mod connect;
mod journey;
mod lifecycle;
mod push;
mod status;
