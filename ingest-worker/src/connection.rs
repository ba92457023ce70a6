//! One RTMP connection: handshake, `rml_rtmp` session, publish decisions, media into the
//! pipeline, segments out to the stream's uploader.
//!
//! Everything that can go wrong on a connection ends that connection only: protocol errors,
//! timeouts, oversized input and even a panic inside `rml_rtmp` (caught around
//! `ServerSession::handle_input`) become a [`ConnectionError`] that is logged in the
//! connection's span.
//!
//! Until its publish is accepted a connection is a stranger, and is kept on a short leash: it
//! must publish within `publish_deadline` of connecting (handshake included), and may send at
//! most `max_preauth_bytes` meanwhile, so it can neither hold its slot nor make the session
//! buffer a large message. `rml_rtmp` reserves address space for a message as soon as a chunk
//! header declares its length, but only what arrives is ever written to, and that is capped.
//!
//! A publish that was live when the connection ends is still finished cleanly: the open
//! segment is flushed and the playlist gets `#EXT-X-ENDLIST`.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkDeserializer;
use rml_rtmp::handshake::{Handshake, HandshakeError, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionError, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

use crate::auth::{ConnectInfo, Decision, PublishRequest};
use crate::listener::ConnectionSlot;
use crate::media::{KeySource, LivePlaylist, MediaConfig, MediaError, Pipeline, PlaylistConfig};
use crate::metrics::RefusalReason;
use crate::server::Shared;
use crate::uploader::{SegmentSender, Uploader};

/// Bytes read from the socket per wakeup: bounds the work done between two checks of the
/// shutdown and cut-off signals (quinn's `MAX_TRANSMIT_DATAGRAMS` idea).
const READ_CHUNK: usize = 16 * 1024;
/// Bytes of post-handshake input searched for the `connect` command before giving up on
/// reporting its fields to the hook.
const CONNECT_SNIFF_LIMIT: usize = 64 * 1024;

/// Why a connection ended early. Logged in the connection's span, never sent to the peer.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Socket error.
    #[error("socket error")]
    Io(#[from] std::io::Error),
    /// The handshake did not complete within `handshake_timeout`.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The peer closed the connection during the handshake.
    #[error("peer closed the connection during the handshake")]
    HandshakeIncomplete,
    /// The handshake bytes are not RTMP.
    #[error("invalid RTMP handshake")]
    Handshake(#[from] HandshakeError),
    /// The RTMP chunk or message stream is malformed.
    #[error("invalid RTMP session data")]
    Session(#[from] ServerSessionError),
    /// `rml_rtmp` panicked on this peer's input; the connection is dropped, the worker lives on.
    #[error("RTMP session panicked on peer input")]
    SessionPanicked,
    /// Nothing was received for `idle_timeout`.
    #[error("idle for too long")]
    IdleTimeout,
    /// The connection had no publish accepted within `publish_deadline`.
    #[error("connected without publishing for too long")]
    NotPublishing,
    /// The connection sent more than `max_preauth_bytes` before its publish was accepted.
    #[error("{0} bytes sent before publishing, above the limit")]
    PreauthTooLarge(usize),
    /// The peer did not read our responses for `idle_timeout`.
    #[error("peer does not read")]
    WriteTimeout,
    /// The peer announced a chunk size above `max_chunk_size`.
    #[error("chunk size {0} above the limit")]
    ChunkSizeTooLarge(u32),
    /// A message exceeded `max_message_size` (or its partial input twice that).
    #[error("message of at least {0} bytes above the limit")]
    MessageTooLarge(usize),
    /// The publisher sends a codec gatecast cannot package (only H.264 + AAC).
    #[error("unsupported codec")]
    UnsupportedCodec(#[source] MediaError),
    /// A connect, publish or play request was refused; the connection is closed after the
    /// refusal was sent, as nginx-rtmp does.
    #[error("refused: {}", .0.as_str())]
    Refused(RefusalReason),
}

/// Key and IV bytes from the OS CSPRNG.
struct OsRandom;

impl KeySource for OsRandom {
    fn fill(&mut self, buf: &mut [u8; 16]) {
        // Invariant: the OS random source does not fail on supported platforms once the process
        // runs; if it ever did, encrypting with predictable keys would be worse than stopping.
        #[allow(clippy::expect_used)]
        getrandom::fill(buf).expect("OS random number generator failed");
    }
}

/// Runs one accepted connection to its end, inside a span carrying `conn_id` and `peer`.
/// `slot` is the connection's share of the caps; it is given back just before the
/// connection stops counting as open, so a client that sees `connections_open` fall can
/// connect again at once.
pub async fn handle_connection(
    shared: Arc<Shared>,
    socket: TcpStream,
    peer: SocketAddr,
    conn_id: u64,
    shutdown: CancellationToken,
    slot: ConnectionSlot,
) {
    let span = tracing::info_span!("connection", conn_id, peer = %peer);
    async move {
        shared.metrics.handle_connection_opened();
        tracing::debug!("accepted");
        let mut connection = Connection {
            accepted_at: Instant::now(),
            preauth_bytes: 0,
            shared: Arc::clone(&shared),
            socket,
            peer,
            conn_id,
            span: Span::current(),
            sniffer: Some(ConnectSniffer::default()),
            connect_info: ConnectInfo::default(),
            app: None,
            publish: PublishState::Idle,
            bytes_without_progress: 0,
            input_arrived_at: std::time::Instant::now(),
        };
        let outcome = connection.run(&shutdown).await;
        connection.finish_publish("connection closed");
        match outcome {
            Ok(()) => tracing::debug!("closed"),
            Err(error) => tracing::info!(error = %error, cause = ?std::error::Error::source(&error).map(ToString::to_string), "connection ended"),
        }
        drop(connection);
        drop(slot);
        shared.metrics.handle_connection_closed();
    }
    .instrument(span)
    .await
}

/// Whether this connection publishes. Transitions go through [`PublishState::finish`] and
/// the publish handler; there is no half-initialized state.
enum PublishState {
    /// Connected, not publishing.
    Idle,
    /// Publishing a stream.
    Live(Box<LivePublish>),
}

/// An accepted publish.
struct LivePublish {
    /// The publish name exactly as `rml_rtmp` reports it in data events (query included).
    session_stream_key: String,
    request: PublishRequest,
    pipeline: Pipeline,
    sender: SegmentSender,
    cutoff: CancellationToken,
    /// The `stream` span (child of the connection's): `app`, `key` fingerprint, `name`.
    span: Span,
    media_errors: u64,
    /// RTMP timestamp of the latest media message, reported by `on_update` as `timestamp`.
    timestamp_ms: Arc<AtomicU32>,
    /// Fired when the publish ends: stops the `on_update` heartbeat.
    ended: CancellationToken,
    /// The `on_update` heartbeat, when configured; `on_publish_done` waits for it.
    heartbeat: Option<JoinHandle<()>>,
}

impl PublishState {
    /// Ends the publish, if any: flushes the open segment and hands the uploader its last
    /// segments (dropping the sender makes it write the final playlist), stops the `on_update`
    /// heartbeat, then fires `on_publish_done` in the background once the heartbeat's last call
    /// has been answered, so the edge never sees an update (which renews the lease) after the
    /// `publish_done` that released it.
    fn finish(self, shared: &Arc<Shared>, why: &str) -> Self {
        let Self::Live(live) = self else { return self };
        let LivePublish {
            mut pipeline,
            sender,
            span,
            request,
            ended,
            heartbeat,
            ..
        } = *live;
        ended.cancel();
        span.in_scope(|| {
            if let Err(error) = pipeline.handle_end_of_stream(&mut OsRandom) {
                tracing::warn!(error = %error, "flushing the last segment failed");
            }
            forward_segments(&mut pipeline, &sender, shared, std::time::Instant::now());
            tracing::info!(why, "publish ended");
        });
        drop(sender);
        let authorizer = Arc::clone(&shared.authorizer);
        shared.tracker.spawn(
            async move {
                if let Some(heartbeat) = heartbeat {
                    let _ = heartbeat.await;
                }
                authorizer.handle_publish_done(&request).await
            }
            .instrument(span),
        );
        Self::Idle
    }

    fn cutoff(&self) -> Option<CancellationToken> {
        match self {
            Self::Live(live) => Some(live.cutoff.clone()),
            Self::Idle => None,
        }
    }
}

/// Moves every ready segment from the pipeline into the upload queue. `closed_at` is when the
/// input that closed them arrived: the start of their segment-visible latency.
fn forward_segments(
    pipeline: &mut Pipeline,
    sender: &SegmentSender,
    shared: &Shared,
    closed_at: std::time::Instant,
) {
    while let Some(segment) = pipeline.poll_segment() {
        let dropped = sender.push(segment, closed_at);
        if dropped > 0 {
            shared.metrics.handle_segments_dropped(dropped);
        }
    }
}

struct Connection {
    /// When the connection was accepted: the publish deadline starts there.
    accepted_at: Instant,
    /// Bytes received since the handshake while not publishing (see `count_preauth`).
    preauth_bytes: usize,
    shared: Arc<Shared>,
    socket: TcpStream,
    peer: SocketAddr,
    conn_id: u64,
    /// The connection span, parent of the stream span.
    span: Span,
    /// Watches the first messages for `connect`, whose fields `rml_rtmp` does not expose.
    sniffer: Option<ConnectSniffer>,
    connect_info: ConnectInfo,
    /// The accepted application name.
    app: Option<String>,
    publish: PublishState,
    /// Input bytes since `rml_rtmp` last completed a message (see `handle_bytes`).
    bytes_without_progress: usize,
    /// When the bytes being handled were read from the socket.
    input_arrived_at: std::time::Instant,
}

#[derive(Clone, Copy)]
enum Track {
    Video,
    Audio,
}

impl Connection {
    async fn run(&mut self, shutdown: &CancellationToken) -> Result<(), ConnectionError> {
        let rtmp = &self.shared.rtmp;
        let handshake_deadline =
            self.accepted_at + rtmp.handshake_timeout.min(rtmp.publish_deadline);
        let leftover = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            leftover = self.handshake(handshake_deadline) => leftover?,
        };
        let (mut session, initial) = ServerSession::new(ServerSessionConfig::new())?;
        self.write_results(initial).await?;
        self.count_preauth(leftover.len())?;
        self.handle_bytes(&mut session, &leftover, shutdown).await?;

        let mut buf = vec![0u8; READ_CHUNK];
        // A connection that does not publish is closed at the publish deadline even if it keeps
        // sending (pings, junk commands): otherwise it could hold a connection slot forever.
        let mut not_publishing_since = Some(self.accepted_at);
        loop {
            match (&self.publish, not_publishing_since) {
                (PublishState::Live(_), _) => not_publishing_since = None,
                (PublishState::Idle, None) => {
                    not_publishing_since = Some(Instant::now());
                    self.preauth_bytes = 0;
                }
                (PublishState::Idle, Some(_)) => {}
            }
            let publish_deadline =
                not_publishing_since.map(|since| since + self.shared.rtmp.publish_deadline);
            let cutoff = self.publish.cutoff();
            let read = tokio::select! {
                () = sleep_until(publish_deadline) => {
                    self.shared.metrics.handle_refused(RefusalReason::PublishDeadline);
                    return Err(ConnectionError::NotPublishing);
                }
                () = shutdown.cancelled() => {
                    self.finish_publish("worker shutting down");
                    return Ok(());
                }
                () = cancelled(cutoff) => {
                    self.finish_publish("cut off");
                    return Ok(());
                }
                read = tokio::time::timeout(self.shared.rtmp.idle_timeout, self.socket.read(&mut buf)) => read,
            };
            let count = read.map_err(|_| ConnectionError::IdleTimeout)??;
            if count == 0 {
                return Ok(());
            }
            self.input_arrived_at = std::time::Instant::now();
            self.shared.metrics.handle_bytes_received(count);
            if matches!(self.publish, PublishState::Idle) {
                self.count_preauth(count)?;
            }
            self.handle_bytes(&mut session, &buf[..count], shutdown)
                .await?;
        }
    }

    /// Counts `bytes` received while not publishing against `max_preauth_bytes`, before they
    /// reach the session.
    fn count_preauth(&mut self, bytes: usize) -> Result<(), ConnectionError> {
        self.preauth_bytes = self.preauth_bytes.saturating_add(bytes);
        if self.preauth_bytes > self.shared.rtmp.max_preauth_bytes {
            self.shared
                .metrics
                .handle_refused(RefusalReason::PreauthTooLarge);
            return Err(ConnectionError::PreauthTooLarge(self.preauth_bytes));
        }
        Ok(())
    }

    /// Runs the server side of the RTMP handshake, which must end by `deadline`; returns bytes
    /// that followed it.
    async fn handshake(&mut self, deadline: Instant) -> Result<Vec<u8>, ConnectionError> {
        let mut handshake = Handshake::new(PeerType::Server);
        let mut buf = vec![0u8; 4096];
        let exchange = async {
            loop {
                let count = self.socket.read(&mut buf).await?;
                if count == 0 {
                    return Err(ConnectionError::HandshakeIncomplete);
                }
                self.shared.metrics.handle_bytes_received(count);
                match handshake.process_bytes(&buf[..count])? {
                    HandshakeProcessResult::InProgress { response_bytes } => {
                        self.socket.write_all(&response_bytes).await?;
                    }
                    HandshakeProcessResult::Completed {
                        response_bytes,
                        remaining_bytes,
                    } => {
                        self.socket.write_all(&response_bytes).await?;
                        return Ok(remaining_bytes);
                    }
                }
            }
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .map_err(|_| ConnectionError::HandshakeTimeout)?
    }

    async fn handle_bytes(
        &mut self,
        session: &mut ServerSession,
        bytes: &[u8],
        shutdown: &CancellationToken,
    ) -> Result<(), ConnectionError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if let Some(sniffer) = &mut self.sniffer
            && let Some(info) = sniffer.handle_bytes(bytes)
        {
            self.connect_info = info;
            self.sniffer = None;
        }
        let results = std::panic::catch_unwind(AssertUnwindSafe(|| session.handle_input(bytes)))
            .map_err(|_| ConnectionError::SessionPanicked)??;
        // `rml_rtmp` buffers a message until it is complete (24-bit length: up to 16 MiB) and
        // cannot be asked how much it holds. Every completed message of a publisher yields a
        // result, so input that yields none for more than twice the message cap (room for
        // chunk headers) is an oversized or bogus message: stop it before it is buffered whole.
        if results.is_empty() {
            self.bytes_without_progress += bytes.len();
            if self.bytes_without_progress > self.shared.rtmp.max_message_size.saturating_mul(2) {
                return Err(ConnectionError::MessageTooLarge(
                    self.bytes_without_progress,
                ));
            }
        } else {
            self.bytes_without_progress = 0;
        }
        let events = self.write_results(results).await?;
        for event in events {
            self.handle_event(session, event, shutdown).await?;
        }
        Ok(())
    }

    /// Sends the outbound packets of one session call, in order, and returns its events.
    ///
    /// All packets of a batch are written before any of its events is handled: an event
    /// handler may serialize more packets, and RTMP header compression requires packets to go
    /// out in the order the session created them.
    async fn write_results(
        &mut self,
        results: Vec<ServerSessionResult>,
    ) -> Result<Vec<ServerSessionEvent>, ConnectionError> {
        let mut events = Vec::new();
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => {
                    tokio::time::timeout(
                        self.shared.rtmp.idle_timeout,
                        self.socket.write_all(&packet.bytes),
                    )
                    .await
                    .map_err(|_| ConnectionError::WriteTimeout)??;
                }
                ServerSessionResult::RaisedEvent(event) => events.push(event),
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(events)
    }

    async fn handle_event(
        &mut self,
        session: &mut ServerSession,
        event: ServerSessionEvent,
        shutdown: &CancellationToken,
    ) -> Result<(), ConnectionError> {
        // Events carry the stream key: never log an event as a whole.
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                self.handle_connection_requested(session, request_id, &app_name)
                    .await
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => {
                self.handle_publish_requested(session, request_id, stream_key, shutdown)
                    .await
            }
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                self.refuse(
                    session,
                    request_id,
                    RefusalReason::PlayRequested,
                    "NetStream.Play.Failed",
                    "playback is not offered here",
                )
                .await
            }
            ServerSessionEvent::VideoDataReceived {
                stream_key,
                data,
                timestamp,
                ..
            } => self.handle_media(Track::Video, &stream_key, timestamp.value, data),
            ServerSessionEvent::AudioDataReceived {
                stream_key,
                data,
                timestamp,
                ..
            } => self.handle_media(Track::Audio, &stream_key, timestamp.value, data),
            ServerSessionEvent::PublishStreamFinished { stream_key, .. } => {
                if matches!(&self.publish, PublishState::Live(live) if live.session_stream_key == stream_key)
                {
                    self.finish_publish("publisher finished");
                }
                Ok(())
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                tracing::debug!(
                    width = metadata.video_width,
                    height = metadata.video_height,
                    video_codec = metadata.video_codec_id,
                    audio_codec = metadata.audio_codec_id,
                    "stream metadata"
                );
                Ok(())
            }
            ServerSessionEvent::ClientChunkSizeChanged { new_chunk_size } => {
                if new_chunk_size > self.shared.rtmp.max_chunk_size {
                    return Err(ConnectionError::ChunkSizeTooLarge(new_chunk_size));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn handle_connection_requested(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        app_name: &str,
    ) -> Result<(), ConnectionError> {
        // Some clients put the URL's query on the app name (`live?x=y`).
        let app = app_name.split('?').next().unwrap_or_default();
        if app != self.shared.rtmp.app {
            return self
                .refuse(
                    session,
                    request_id,
                    RefusalReason::WrongApp,
                    "NetConnection.Connect.Rejected",
                    "unknown application",
                )
                .await;
        }
        let results = session.accept_request(request_id)?;
        self.write_results(results).await?;
        self.app = Some(app.to_owned());
        Ok(())
    }

    /// Verifies the key, then accepts or rejects the publish: policy and the `rml_rtmp`
    /// accept/reject call live in this one function, so no path accepts without the check.
    async fn handle_publish_requested(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        session_stream_key: String,
        shutdown: &CancellationToken,
    ) -> Result<(), ConnectionError> {
        if matches!(self.publish, PublishState::Live(_)) {
            return self
                .refuse(
                    session,
                    request_id,
                    RefusalReason::AlreadyPublishing,
                    "NetStream.Publish.BadName",
                    "already publishing",
                )
                .await;
        }
        let app = self
            .app
            .clone()
            .unwrap_or_else(|| self.shared.rtmp.app.clone());
        let (key, args) = PublishRequest::split_name(&session_stream_key);
        let mut lease = [0u8; 16];
        OsRandom.fill(&mut lease);
        let request = PublishRequest {
            key,
            args,
            app: app.clone(),
            addr: self.peer.ip(),
            client_id: self.conn_id,
            lease_id: hex::encode(lease),
            connect: self.connect_info.clone(),
        };
        let span = tracing::info_span!(
            parent: &self.span,
            "stream",
            app = %app,
            key = %request.key,
            name = tracing::field::Empty,
        );
        let decision = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            decision = self.shared.authorizer.authorize(&request).instrument(span.clone()) => decision,
        };
        let (name, source) = match decision {
            Decision::Allowed { name, source } => (name, source),
            Decision::Refused(reason) => {
                return self
                    .refuse(
                        session,
                        request_id,
                        reason,
                        "NetStream.Publish.BadName",
                        "publish refused",
                    )
                    .instrument(span)
                    .await;
            }
        };
        span.record("name", tracing::field::display(&name));
        let Some((lease, cutoff)) = self
            .shared
            .registry
            .claim(&name, request.key.digest(), source)
        else {
            return self
                .refuse(
                    session,
                    request_id,
                    RefusalReason::NameBusy,
                    "NetStream.Publish.BadName",
                    "stream is already live",
                )
                .instrument(span)
                .await;
        };
        let results = session.accept_request(request_id)?;
        self.write_results(results).await?;

        let media = &self.shared.media;
        let started_at = SystemTime::now();
        // Sequence numbers and key ids start at the publish time, so a restarted broadcast
        // never reuses a URI for different bytes.
        let first_sequence = started_at.duration_since(UNIX_EPOCH).map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
        let pipeline = Pipeline::new(
            MediaConfig {
                segment_duration: media.segment_duration,
                segments_per_key: media.segments_per_key,
            },
            first_sequence,
            started_at,
        )
        .with_segment_buffers(self.shared.segment_buffers.clone());
        let playlist = LivePlaylist::new(
            name.clone(),
            PlaylistConfig {
                window: media.playlist_segments,
                key_uri_prefix: media.key_uri_prefix.clone(),
                record: media.record,
            },
        );
        let (uploader, sender) = Uploader::new(
            name,
            self.shared.stores.clone(),
            playlist,
            Arc::clone(&self.shared.upload_budget),
            Arc::clone(&self.shared.metrics),
            self.shared.abort.clone(),
            lease,
        );
        let uploader = uploader.with_segment_buffers(self.shared.segment_buffers.clone());
        self.shared
            .tracker
            .spawn(uploader.run().instrument(span.clone()));
        span.in_scope(|| tracing::info!(auth = ?source, first_sequence, "publish accepted"));
        let timestamp_ms = Arc::new(AtomicU32::new(0));
        let ended = CancellationToken::new();
        let heartbeat = self.shared.authorizer.update_interval().map(|interval| {
            self.shared.tracker.spawn(
                keep_publishing(
                    Arc::clone(&self.shared),
                    request.clone(),
                    interval,
                    cutoff.clone(),
                    ended.clone(),
                    Arc::clone(&timestamp_ms),
                )
                .instrument(span.clone()),
            )
        });
        self.publish = PublishState::Live(Box::new(LivePublish {
            session_stream_key,
            request,
            pipeline,
            sender,
            cutoff,
            span,
            media_errors: 0,
            timestamp_ms,
            ended,
            heartbeat,
        }));
        Ok(())
    }

    /// Sends a refusal for `request_id`, counts it, and ends the connection.
    async fn refuse(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        reason: RefusalReason,
        code: &str,
        description: &str,
    ) -> Result<(), ConnectionError> {
        self.shared.metrics.handle_refused(reason);
        tracing::info!(reason = reason.as_str(), "refused");
        let results = session.reject_request(request_id, code, description)?;
        self.write_results(results).await?;
        let _ = self.socket.flush().await;
        Err(ConnectionError::Refused(reason))
    }

    fn handle_media(
        &mut self,
        track: Track,
        stream_key: &str,
        timestamp_ms: u32,
        data: Bytes,
    ) -> Result<(), ConnectionError> {
        if data.len() > self.shared.rtmp.max_message_size {
            return Err(ConnectionError::MessageTooLarge(data.len()));
        }
        let PublishState::Live(live) = &mut self.publish else {
            return Ok(());
        };
        if live.session_stream_key != stream_key {
            return Ok(());
        }
        live.timestamp_ms.store(timestamp_ms, Ordering::Relaxed);
        let span = live.span.clone();
        let _entered = span.enter();
        let result = match track {
            Track::Video => live
                .pipeline
                .handle_video(timestamp_ms, &data, &mut OsRandom),
            Track::Audio => live
                .pipeline
                .handle_audio(timestamp_ms, &data, &mut OsRandom),
        };
        if let Err(error) = result {
            if error.is_unsupported_codec() {
                tracing::warn!(error = %error, "publisher uses an unsupported codec");
                return Err(ConnectionError::UnsupportedCodec(error));
            }
            live.media_errors += 1;
            // Log the 1st, 2nd, 4th, 8th… error: visible without flooding the log.
            if live.media_errors.is_power_of_two() {
                tracing::warn!(error = %error, count = live.media_errors, "skipped a malformed media tag");
            }
        }
        forward_segments(
            &mut live.pipeline,
            &live.sender,
            &self.shared,
            self.input_arrived_at,
        );
        Ok(())
    }

    fn finish_publish(&mut self, why: &str) {
        let state = std::mem::replace(&mut self.publish, PublishState::Idle);
        self.publish = state.finish(&self.shared, why);
    }
}

/// nginx-rtmp's `on_update` heartbeat of one live publish: every `interval`, ask the hook, and
/// cut the publish off (through `cutoff`, so it ends with `#EXT-X-ENDLIST` like an admin
/// cut-off) when it refuses. `ended` stops it between calls; a call in flight is answered first.
async fn keep_publishing(
    shared: Arc<Shared>,
    request: PublishRequest,
    interval: Duration,
    cutoff: CancellationToken,
    ended: CancellationToken,
    timestamp_ms: Arc<AtomicU32>,
) {
    let started = Instant::now();
    let mut ticks = tokio::time::interval_at(started + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = ended.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let timestamp = timestamp_ms.load(Ordering::Relaxed);
        let keep = shared
            .authorizer
            .handle_update(&request, started.elapsed(), timestamp)
            .await;
        if !keep {
            shared.metrics.handle_refused(RefusalReason::UpdateRefused);
            tracing::info!("on_update refused: cutting the publisher off");
            cutoff.cancel();
            return;
        }
    }
}

/// Resolves at `deadline`, never without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Resolves when `token` (if any) is cancelled.
async fn cancelled(token: Option<CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Finds the `connect` command in the first bytes after the handshake.
///
/// `rml_rtmp` reports only the app name of `connect`, but nginx-rtmp's hooks also carry
/// `tcUrl`, `flashVer`, `swfUrl` and `pageUrl`. A second chunk deserializer reads the same bytes
/// until `connect` shows up (it is the first command a client sends), then is dropped.
struct ConnectSniffer {
    deserializer: ChunkDeserializer,
    seen: usize,
}

impl Default for ConnectSniffer {
    fn default() -> Self {
        Self {
            deserializer: ChunkDeserializer::new(),
            seen: 0,
        }
    }
}

impl ConnectSniffer {
    /// `Some` once the connect fields are known or the search was given up (then empty).
    fn handle_bytes(&mut self, bytes: &[u8]) -> Option<ConnectInfo> {
        self.seen += bytes.len();
        let found = std::panic::catch_unwind(AssertUnwindSafe(|| self.search(bytes)))
            .ok()
            .flatten();
        match found {
            Some(info) => Some(info),
            None if self.seen > CONNECT_SNIFF_LIMIT => Some(ConnectInfo::default()),
            None => None,
        }
    }

    fn search(&mut self, bytes: &[u8]) -> Option<ConnectInfo> {
        let mut input = bytes;
        loop {
            let payload = match self.deserializer.get_next_message(input) {
                Ok(Some(payload)) => payload,
                Ok(None) => return None,
                Err(_) => return Some(ConnectInfo::default()),
            };
            input = &[];
            match payload.to_rtmp_message() {
                Ok(RtmpMessage::SetChunkSize { size }) => {
                    // Keep chunk framing in step with the client, or give up on bad sizes.
                    let resized = self.deserializer.set_max_chunk_size(size as usize);
                    if resized.is_err() {
                        return Some(ConnectInfo::default());
                    }
                }
                Ok(RtmpMessage::Amf0Command {
                    command_name,
                    command_object,
                    ..
                }) if command_name == "connect" => {
                    return Some(connect_info(command_object));
                }
                _ => {}
            }
        }
    }
}

fn connect_info(command_object: Amf0Value) -> ConnectInfo {
    let Amf0Value::Object(mut properties) = command_object else {
        return ConnectInfo::default();
    };
    let mut text = |name: &str| match properties.remove(name) {
        Some(Amf0Value::Utf8String(value)) => value,
        _ => String::new(),
    };
    ConnectInfo {
        tcurl: text("tcUrl"),
        flashver: text("flashVer"),
        swfurl: text("swfUrl"),
        pageurl: text("pageUrl"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::chunk_io::ChunkSerializer;
    use rml_rtmp::time::RtmpTimestamp;
    use std::collections::HashMap;

    fn connect_bytes(serializer: &mut ChunkSerializer) -> Vec<u8> {
        let mut properties = HashMap::new();
        properties.insert("app".to_owned(), Amf0Value::Utf8String("live".into()));
        properties.insert(
            "tcUrl".to_owned(),
            Amf0Value::Utf8String("rtmp://127.0.0.1:1935/live".into()),
        );
        properties.insert(
            "flashVer".to_owned(),
            Amf0Value::Utf8String("FMLE/3.0".into()),
        );
        let message = RtmpMessage::Amf0Command {
            command_name: "connect".into(),
            transaction_id: 1.0,
            command_object: Amf0Value::Object(properties),
            additional_arguments: Vec::new(),
        };
        let payload = message
            .into_message_payload(RtmpTimestamp::new(0), 0)
            .expect("serializable");
        serializer
            .serialize(&payload, false, false)
            .expect("serializable")
            .bytes
    }

    #[test]
    fn sniffer_finds_connect_fields_across_reads_and_chunk_size_changes() {
        let mut serializer = ChunkSerializer::new();
        let mut bytes = serializer
            .set_max_chunk_size(4096, RtmpTimestamp::new(0))
            .expect("ok")
            .bytes;
        bytes.extend(connect_bytes(&mut serializer));
        let mut sniffer = ConnectSniffer::default();
        let (first, rest) = bytes.split_at(7);
        assert_eq!(sniffer.handle_bytes(first), None);
        let info = sniffer.handle_bytes(rest).expect("connect found");
        assert_eq!(info.tcurl, "rtmp://127.0.0.1:1935/live");
        assert_eq!(info.flashver, "FMLE/3.0");
        assert_eq!(info.swfurl, "");
    }

    #[test]
    fn sniffer_gives_up_on_garbage() {
        let mut sniffer = ConnectSniffer::default();
        let garbage = vec![0x03u8; CONNECT_SNIFF_LIMIT + 1];
        assert_eq!(sniffer.handle_bytes(&garbage), Some(ConnectInfo::default()));
    }

    #[test]
    fn os_random_differs_between_draws() {
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        OsRandom.fill(&mut a);
        OsRandom.fill(&mut b);
        assert_ne!(a, b);
    }
}
