//! Everything that talks to a partner is one kind of thing: [`http`] (the shared client — gate,
//! retry classification, tokens), and the two APIs on top of it, [`crego`] (with the keyset
//! reader of its change streams) and [`credgenics`] (with its documented field rules).

pub mod credgenics;
pub mod crego;
pub mod http;
