//! The pure media stages (being written by the media-pipeline work).
