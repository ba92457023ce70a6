//! A light RTMP load tool: many publishers in one process replay a recorded FLV in real time.
//!
//! Why not ffmpeg: an `ffmpeg -re -c copy` publisher costs ~0.4 % of a core, so on the 2-core
//! bench machine a few hundred of them leave no CPU for the servers under test, and the
//! "largest N sustained" measures the publishers. This replayer parses the recording once and
//! sends its tags over rml_rtmp client sessions, paced by their timestamps (looping forever,
//! timestamps continuing), a few tags per wake-up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use gatecast_ingest::media::flv;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Tags due within this much of now go out together, so a publisher wakes ~50 times a second
/// rather than once per audio frame.
const SEND_AHEAD: Duration = Duration::from_millis(20);

/// One audio or video tag of the recording.
struct Tag {
    video: bool,
    timestamp_ms: u32,
    body: Bytes,
}

/// A recording parsed into its audio and video tags (script tags are dropped).
pub struct Recording {
    tags: Vec<Tag>,
    /// Timestamp distance from one loop to the next: the last tag plus one frame.
    loop_ms: u32,
}

impl Recording {
    /// Reads an FLV file and keeps its audio and video tags.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let tags: Vec<Tag> = flv::split_file(&bytes)
            .with_context(|| format!("splitting {}", path.display()))?
            .into_iter()
            .filter(|tag| {
                tag.tag_type == flv::TAG_TYPE_AUDIO || tag.tag_type == flv::TAG_TYPE_VIDEO
            })
            .map(|tag| Tag {
                video: tag.tag_type == flv::TAG_TYPE_VIDEO,
                timestamp_ms: tag.timestamp_ms,
                body: Bytes::copy_from_slice(tag.body),
            })
            .collect();
        let last = tags.last().map(|tag| tag.timestamp_ms).context("no tags")?;
        Ok(Self {
            tags,
            loop_ms: last + 33,
        })
    }
}

/// Publishes `recording` to `rtmp://addr/app/key` in real time until the connection fails.
pub async fn publish(
    recording: Arc<Recording>,
    addr: SocketAddr,
    app: &str,
    key: &str,
) -> anyhow::Result<()> {
    let mut socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    let mut buffer = vec![0u8; 64 * 1024];

    let mut handshake = Handshake::new(PeerType::Client);
    socket
        .write_all(&handshake.generate_outbound_p0_and_p1()?)
        .await?;
    let leftover = loop {
        let read = socket.read(&mut buffer).await?;
        if read == 0 {
            bail!("server closed during the handshake");
        }
        match handshake.process_bytes(&buffer[..read])? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                socket.write_all(&response_bytes).await?;
                break remaining_bytes;
            }
        }
    };

    let mut config = ClientSessionConfig::new();
    config.tc_url = Some(format!("rtmp://{addr}/{app}"));
    let (mut session, initial) = ClientSession::new(config)?;
    let mut outbound = Vec::new();
    let mut events = Vec::new();
    collect(initial, &mut outbound, &mut events);
    collect(
        vec![session.request_connection(app.to_owned())?],
        &mut outbound,
        &mut events,
    );
    collect(session.handle_input(&leftover)?, &mut outbound, &mut events);
    let mut publishing = false;
    while !publishing {
        socket.write_all(&outbound).await?;
        outbound.clear();
        for event in events.drain(..) {
            match event {
                ClientSessionEvent::ConnectionRequestAccepted => {
                    let request =
                        session.request_publishing(key.to_owned(), PublishRequestType::Live)?;
                    collect(vec![request], &mut outbound, &mut Vec::new());
                }
                ClientSessionEvent::ConnectionRequestRejected { description } => {
                    bail!("connect refused: {description}")
                }
                ClientSessionEvent::PublishRequestAccepted => publishing = true,
                _ => {}
            }
        }
        if publishing || !outbound.is_empty() {
            continue;
        }
        let read = socket.read(&mut buffer).await?;
        if read == 0 {
            bail!("server closed before publishing was accepted");
        }
        collect(
            session.handle_input(&buffer[..read])?,
            &mut outbound,
            &mut events,
        );
    }
    socket.write_all(&outbound).await?;
    outbound.clear();

    let started = Instant::now();
    let mut round: u64 = 0;
    loop {
        for tag in &recording.tags {
            let at_ms = round * u64::from(recording.loop_ms) + u64::from(tag.timestamp_ms);
            let due = started + Duration::from_millis(at_ms);
            if due > Instant::now() + SEND_AHEAD {
                socket.write_all(&outbound).await?;
                outbound.clear();
                // Read what the server sent meanwhile (acknowledgements, pings) without
                // blocking the schedule; a closed connection ends the publisher.
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    read = socket.read(&mut buffer) => {
                        let read = read?;
                        if read == 0 {
                            bail!("server closed the publishing connection");
                        }
                        collect(session.handle_input(&buffer[..read])?, &mut outbound, &mut Vec::new());
                        tokio::time::sleep_until(due).await;
                    }
                }
            }
            // 32-bit RTMP timestamps wrap after ~49 days; the server handles the wrap.
            let timestamp = RtmpTimestamp::new(at_ms as u32);
            let packet = if tag.video {
                session.publish_video_data(tag.body.clone(), timestamp, false)?
            } else {
                session.publish_audio_data(tag.body.clone(), timestamp, false)?
            };
            collect(vec![packet], &mut outbound, &mut Vec::new());
        }
        round += 1;
    }
}

/// Splits session results into bytes to send and events to act on.
fn collect(
    results: Vec<ClientSessionResult>,
    outbound: &mut Vec<u8>,
    events: &mut Vec<ClientSessionEvent>,
) {
    for result in results {
        match result {
            ClientSessionResult::OutboundResponse(packet) => {
                outbound.extend_from_slice(&packet.bytes)
            }
            ClientSessionResult::RaisedEvent(event) => events.push(event),
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
}
