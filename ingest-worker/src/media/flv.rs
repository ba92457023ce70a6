//! FLV VIDEODATA / AUDIODATA tag bodies, as rml_rtmp hands them over in `VideoDataReceived` /
//! `AudioDataReceived` (the body starts with the FrameType/CodecID resp. SoundFormat byte; the
//! 11-byte FLV tag header is not part of it).
//!
//! Only H.264 (AVC, CodecID 7) and AAC (SoundFormat 10) are accepted: those are the codecs every
//! HLS player decodes from MPEG-TS. Everything else is refused with
//! [`FlvError::UnsupportedCodec`] so the shell can tell the publisher why instead of writing
//! segments nobody can play. Parsing borrows from the input and never panics on short or hostile
//! bytes: every read is bounds-checked and reported as a typed [`FlvError`].

/// Why a tag body (or, for [`split_file`], an FLV file) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    /// The codec is not H.264 / AAC (or uses the Enhanced-RTMP extended header), which
    /// gatecast cannot put into HLS MPEG-TS.
    #[error("unsupported {track} codec id {codec_id}")]
    UnsupportedCodec {
        /// Which kind of tag carried it.
        track: TrackKind,
        /// The FLV CodecID (video) or SoundFormat (audio), or the raw first byte for an
        /// Enhanced-RTMP extended header.
        codec_id: u8,
    },
    /// The tag body ends before a field it announces.
    #[error("truncated {what}")]
    Truncated {
        /// The structure that was cut short.
        what: &'static str,
    },
    /// The AVC packet type byte is not 0, 1 or 2.
    #[error("unknown AVC packet type {0}")]
    UnknownAvcPacketType(u8),
    /// The AAC packet type byte is not 0 or 1.
    #[error("unknown AAC packet type {0}")]
    UnknownAacPacketType(u8),
    /// The AVCDecoderConfigurationRecord is not version 1 or carries no SPS / PPS.
    #[error("invalid AVCDecoderConfigurationRecord: {0}")]
    InvalidAvcConfig(&'static str),
    /// The AudioSpecificConfig describes something ADTS cannot carry (an object type other than
    /// AAC Main/LC/SSR/LTP (optionally wrapped in SBR/PS), an explicit sampling frequency, or a
    /// program config element instead of a channel configuration).
    #[error("unsupported AudioSpecificConfig: {0}")]
    UnsupportedAacConfig(&'static str),
    /// [`split_file`] input that does not start with the `FLV` signature.
    #[error("not an FLV file")]
    NotFlvFile,
}

/// Audio or video, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// A VIDEODATA tag.
    Video,
    /// An AUDIODATA tag.
    Audio,
}

impl std::fmt::Display for TrackKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Video => "video",
            Self::Audio => "audio",
        })
    }
}

/// FLV file TagType of an AUDIODATA tag (FLV spec E.4.1).
pub const TAG_TYPE_AUDIO: u8 = 8;
/// FLV file TagType of a VIDEODATA tag.
pub const TAG_TYPE_VIDEO: u8 = 9;
/// Bytes of an FLV file tag header: TagType, DataSize (24), Timestamp (24 + 8 extended), StreamID (24).
const FILE_TAG_HEADER_LEN: usize = 11;
/// Bytes of the PreviousTagSize field after the file header and after every tag.
const PREVIOUS_TAG_SIZE_LEN: usize = 4;

/// One tag of an FLV file: what a publisher sends as one RTMP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileTag<'a> {
    /// TagType (low 5 bits of the first header byte): [`TAG_TYPE_AUDIO`], [`TAG_TYPE_VIDEO`],
    /// 18 for script data.
    pub tag_type: u8,
    /// Milliseconds: the 24-bit Timestamp with TimestampExtended as its upper 8 bits.
    pub timestamp_ms: u32,
    /// The tag body, as [`parse_video_tag`] / [`parse_audio_tag`] take it.
    pub body: &'a [u8],
}

/// Splits an FLV file (FLV spec E.2–E.4: header, then PreviousTagSize + tag, repeated) into its
/// tags, in file order. Fewer trailing bytes than a tag header are ignored (a recording cut
/// between tags); a tag whose body is cut short is [`FlvError::Truncated`].
pub fn split_file(bytes: &[u8]) -> Result<Vec<FileTag<'_>>, FlvError> {
    if !bytes.starts_with(b"FLV") {
        return Err(FlvError::NotFlvFile);
    }
    let header_len = bytes
        .get(5..9)
        .map(|field| u32::from_be_bytes([field[0], field[1], field[2], field[3]]))
        .ok_or(FlvError::Truncated {
            what: "FLV file header",
        })?;
    let mut at = usize::try_from(header_len)
        .unwrap_or(usize::MAX)
        .saturating_add(PREVIOUS_TAG_SIZE_LEN);
    let mut tags = Vec::new();
    while let Some(header) = bytes.get(at..at.saturating_add(FILE_TAG_HEADER_LEN)) {
        let size =
            usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
        let body_start = at + FILE_TAG_HEADER_LEN;
        let body = bytes
            .get(body_start..body_start + size)
            .ok_or(FlvError::Truncated {
                what: "FLV file tag",
            })?;
        tags.push(FileTag {
            tag_type: header[0] & 0x1F,
            timestamp_ms: u32::from_be_bytes([header[7], header[4], header[5], header[6]]),
            body,
        });
        at = body_start + size + PREVIOUS_TAG_SIZE_LEN;
    }
    Ok(tags)
}

/// FLV CodecID of H.264.
const CODEC_ID_AVC: u8 = 7;
/// FLV SoundFormat of AAC.
const SOUND_FORMAT_AAC: u8 = 10;
/// FLV FrameType of a keyframe (seekable frame).
const FRAME_TYPE_KEY: u8 = 1;
/// FLV FrameType of a video info/command frame: carries no picture.
const FRAME_TYPE_COMMAND: u8 = 5;
/// Enhanced RTMP sets this bit of the first byte to announce a FourCC codec (HEVC, AV1, ...).
const ENHANCED_RTMP_EX_HEADER: u8 = 0x80;

/// One parsed VIDEODATA body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag<'a> {
    /// AVC packet type 0: decoder configuration, sent before the first picture and again when
    /// the encoder changes resolution or profile.
    Config(AvcConfig),
    /// AVC packet type 1: one access unit of length-prefixed NAL units.
    Nalus {
        /// FLV FrameType says "keyframe".
        keyframe: bool,
        /// PTS − DTS in milliseconds (signed 24-bit in the tag).
        composition_offset_ms: i32,
        /// Length-prefixed NAL units (prefix size from [`AvcConfig::nalu_length_size`]).
        data: &'a [u8],
    },
    /// AVC packet type 2, or a FrameType 5 info/command frame: nothing to decode.
    Ignored,
}

/// One parsed AUDIODATA body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTag<'a> {
    /// AAC packet type 0: the AudioSpecificConfig.
    Config(AacConfig),
    /// AAC packet type 1: one raw AAC frame (no ADTS header).
    Frame(&'a [u8]),
}

/// The parts of an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.2.4.1) the remuxer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// Size in bytes (1, 2 or 4) of the length prefix in front of every NAL unit.
    pub nalu_length_size: u8,
    /// Sequence parameter sets, without length prefix.
    pub sps: Vec<Vec<u8>>,
    /// Picture parameter sets, without length prefix.
    pub pps: Vec<Vec<u8>>,
}

/// The parts of an AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) an ADTS header needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// Core audio object type, 1..=4 (Main, LC, SSR, LTP). For HE-AAC (SBR/PS) this is the
    /// wrapped core type: ADTS signals HE-AAC implicitly.
    pub object_type: u8,
    /// Sampling frequency index of the core decoder, 0..=12.
    pub sampling_frequency_index: u8,
    /// Channel configuration, 1..=7.
    pub channel_configuration: u8,
}

impl AacConfig {
    /// Core sampling rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        const RATES: [u32; 13] = [
            96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025,
            8_000, 7_350,
        ];
        RATES
            .get(usize::from(self.sampling_frequency_index))
            .copied()
            .unwrap_or(44_100)
    }
}

/// Parses a VIDEODATA tag body.
pub fn parse_video_tag(body: &[u8]) -> Result<VideoTag<'_>, FlvError> {
    let &first = body.first().ok_or(FlvError::Truncated {
        what: "video tag header",
    })?;
    if first & ENHANCED_RTMP_EX_HEADER != 0 {
        return Err(FlvError::UnsupportedCodec {
            track: TrackKind::Video,
            codec_id: first,
        });
    }
    let frame_type = first >> 4;
    let codec_id = first & 0x0F;
    if frame_type == FRAME_TYPE_COMMAND {
        return Ok(VideoTag::Ignored);
    }
    if codec_id != CODEC_ID_AVC {
        return Err(FlvError::UnsupportedCodec {
            track: TrackKind::Video,
            codec_id,
        });
    }
    let header = body.get(1..5).ok_or(FlvError::Truncated {
        what: "AVC packet header",
    })?;
    let payload = &body[5..];
    match header[0] {
        0 => Ok(VideoTag::Config(parse_avc_config(payload)?)),
        1 => {
            // SI24, big-endian: shift into the top of an i32 and back to sign-extend.
            let raw = i32::from_be_bytes([header[1], header[2], header[3], 0]);
            Ok(VideoTag::Nalus {
                keyframe: frame_type == FRAME_TYPE_KEY,
                composition_offset_ms: raw >> 8,
                data: payload,
            })
        }
        2 => Ok(VideoTag::Ignored),
        other => Err(FlvError::UnknownAvcPacketType(other)),
    }
}

/// Parses an AUDIODATA tag body.
pub fn parse_audio_tag(body: &[u8]) -> Result<AudioTag<'_>, FlvError> {
    let &first = body.first().ok_or(FlvError::Truncated {
        what: "audio tag header",
    })?;
    let sound_format = first >> 4;
    if sound_format != SOUND_FORMAT_AAC {
        return Err(FlvError::UnsupportedCodec {
            track: TrackKind::Audio,
            codec_id: sound_format,
        });
    }
    let &packet_type = body.get(1).ok_or(FlvError::Truncated {
        what: "AAC packet type",
    })?;
    let payload = &body[2..];
    match packet_type {
        0 => Ok(AudioTag::Config(parse_aac_config(payload)?)),
        1 => Ok(AudioTag::Frame(payload)),
        other => Err(FlvError::UnknownAacPacketType(other)),
    }
}

/// A bounds-checked big-endian reader over a byte slice.
struct ByteReader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> ByteReader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], FlvError> {
        if self.rest.len() < len {
            return Err(FlvError::Truncated { what: self.what });
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, FlvError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, FlvError> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    /// `count` parameter sets, each prefixed with a 16-bit length.
    fn parameter_sets(&mut self, count: usize) -> Result<Vec<Vec<u8>>, FlvError> {
        (0..count)
            .map(|_| {
                let len = usize::from(self.u16()?);
                Ok(self.take(len)?.to_vec())
            })
            .collect()
    }
}

fn parse_avc_config(record: &[u8]) -> Result<AvcConfig, FlvError> {
    let mut reader = ByteReader {
        rest: record,
        what: "AVCDecoderConfigurationRecord",
    };
    let version = reader.u8()?;
    if version != 1 {
        return Err(FlvError::InvalidAvcConfig("configurationVersion is not 1"));
    }
    reader.take(3)?; // profile, compatibility, level: the SPS carries them too
    let nalu_length_size = (reader.u8()? & 0x03) + 1;
    if nalu_length_size == 3 {
        return Err(FlvError::InvalidAvcConfig("NAL unit length size 3"));
    }
    let sps_count = usize::from(reader.u8()? & 0x1F);
    let sps = reader.parameter_sets(sps_count)?;
    let pps_count = usize::from(reader.u8()?);
    let pps = reader.parameter_sets(pps_count)?;
    // High-profile records may carry chroma/bit-depth extensions after this; not needed.
    if sps.iter().all(Vec::is_empty) || pps.iter().all(Vec::is_empty) {
        return Err(FlvError::InvalidAvcConfig("no SPS or no PPS"));
    }
    Ok(AvcConfig {
        nalu_length_size,
        sps,
        pps,
    })
}

/// Reads MSB-first bit fields for the AudioSpecificConfig.
struct BitReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl BitReader<'_> {
    fn bits(&mut self, count: usize) -> Result<u32, FlvError> {
        let mut value = 0u32;
        for _ in 0..count {
            let byte = self
                .bytes
                .get(self.position / 8)
                .ok_or(FlvError::Truncated {
                    what: "AudioSpecificConfig",
                })?;
            let bit = (byte >> (7 - self.position % 8)) & 1;
            value = (value << 1) | u32::from(bit);
            self.position += 1;
        }
        Ok(value)
    }

    fn object_type(&mut self) -> Result<u32, FlvError> {
        match self.bits(5)? {
            31 => Ok(32 + self.bits(6)?),
            object_type => Ok(object_type),
        }
    }

    fn sampling_frequency_index(&mut self) -> Result<u8, FlvError> {
        match self.bits(4)? {
            // 0x0F is followed by an explicit 24-bit frequency, which ADTS cannot express.
            index @ 0..=12 => Ok(index as u8), // fits: 0..=12
            _ => Err(FlvError::UnsupportedAacConfig(
                "explicit or reserved sampling frequency",
            )),
        }
    }
}

fn parse_aac_config(config: &[u8]) -> Result<AacConfig, FlvError> {
    const SBR: u32 = 5;
    const PS: u32 = 29;
    let mut reader = BitReader {
        bytes: config,
        position: 0,
    };
    let mut object_type = reader.object_type()?;
    let sampling_frequency_index = reader.sampling_frequency_index()?;
    let channel_configuration = reader.bits(4)? as u8; // 4 bits
    if object_type == SBR || object_type == PS {
        // Explicit HE-AAC signalling: extension frequency, then the core object type. The ADTS
        // header describes the core stream; decoders find the SBR/PS data in it on their own.
        reader.sampling_frequency_index()?;
        object_type = reader.object_type()?;
    }
    if !(1..=4).contains(&object_type) {
        return Err(FlvError::UnsupportedAacConfig(
            "object type ADTS cannot carry",
        ));
    }
    if !(1..=7).contains(&channel_configuration) {
        return Err(FlvError::UnsupportedAacConfig("channel configuration"));
    }
    Ok(AacConfig {
        object_type: object_type as u8, // 1..=4
        sampling_frequency_index,
        channel_configuration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file written out by hand from the FLV spec: header (DataOffset 9), PreviousTagSize0,
    /// a 3-byte video tag at timestamp 0x01020304 (stored as 02 03 04, extension 01), its
    /// PreviousTagSize (14), a 1-byte script tag, its PreviousTagSize and one stray byte.
    const HAND_WRITTEN_FILE: &[u8] = &[
        b'F', b'L', b'V', 1, 0x05, 0, 0, 0, 9, // header
        0, 0, 0, 0, // PreviousTagSize0
        9, 0, 0, 3, 0x02, 0x03, 0x04, 0x01, 0, 0, 0, 0x17, 0x01, 0x00, // video tag
        0, 0, 0, 14, // PreviousTagSize
        0x12, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x02, // script tag
        0, 0, 0, 12, 0xAA, // PreviousTagSize, then a cut-off byte
    ];

    #[test]
    fn split_file_reads_hand_written_tags() {
        assert_eq!(
            split_file(HAND_WRITTEN_FILE),
            Ok(vec![
                FileTag {
                    tag_type: 9,
                    timestamp_ms: 0x0102_0304,
                    body: &[0x17, 0x01, 0x00]
                },
                FileTag {
                    tag_type: 18,
                    timestamp_ms: 0,
                    body: &[0x02]
                },
            ])
        );
    }

    #[test]
    fn split_file_refuses_other_files_and_cut_bodies() {
        assert_eq!(split_file(b"GIF89a"), Err(FlvError::NotFlvFile));
        assert_eq!(
            split_file(b"FLV\x01"),
            Err(FlvError::Truncated {
                what: "FLV file header"
            })
        );
        // Cut inside the video tag's body.
        assert_eq!(
            split_file(&HAND_WRITTEN_FILE[..25]),
            Err(FlvError::Truncated {
                what: "FLV file tag"
            })
        );
    }

    /// A hand-assembled AVCDecoderConfigurationRecord: version 1, High@3.0, 4-byte lengths,
    /// one 4-byte SPS, one 2-byte PPS.
    const AVC_RECORD: [u8; 19] = [
        0x01, 0x64, 0x00, 0x1E, 0xFF, 0xE1, 0x00, 0x04, 0x67, 0x64, 0x00, 0x1E, 0x01, 0x00, 0x02,
        0x68, 0xEE, 0x00, 0x00,
    ];

    fn video_body(first: u8, packet_type: u8, cto: [u8; 3], payload: &[u8]) -> Vec<u8> {
        let mut body = vec![first, packet_type, cto[0], cto[1], cto[2]];
        body.extend_from_slice(payload);
        body
    }

    #[test]
    fn avc_config_record_is_parsed() {
        let body = video_body(0x17, 0, [0, 0, 0], &AVC_RECORD[..17]);
        let VideoTag::Config(config) = parse_video_tag(&body).expect("valid") else {
            panic!("expected a config");
        };
        assert_eq!(config.nalu_length_size, 4);
        assert_eq!(config.sps, vec![vec![0x67, 0x64, 0x00, 0x1E]]);
        assert_eq!(config.pps, vec![vec![0x68, 0xEE]]);
    }

    #[test]
    fn composition_offset_is_signed_24_bit() {
        let body = video_body(0x27, 1, [0xFF, 0xFF, 0xD8], &[0, 0, 0, 1, 0x41]);
        assert_eq!(
            parse_video_tag(&body),
            Ok(VideoTag::Nalus {
                keyframe: false,
                composition_offset_ms: -40,
                data: &[0, 0, 0, 1, 0x41]
            })
        );
        let body = video_body(0x17, 1, [0x00, 0x00, 0x50], &[]);
        assert_eq!(
            parse_video_tag(&body),
            Ok(VideoTag::Nalus {
                keyframe: true,
                composition_offset_ms: 80,
                data: &[]
            })
        );
        assert_eq!(
            parse_video_tag(&video_body(0x17, 2, [0; 3], &[])),
            Ok(VideoTag::Ignored)
        );
        assert_eq!(parse_video_tag(&[0x57, 0x00]), Ok(VideoTag::Ignored));
    }

    #[test]
    fn other_codecs_are_unsupported() {
        // Sorenson H.263 (2), VP6 (4), HEVC in legacy id 12, Enhanced-RTMP FourCC header.
        for first in [0x12, 0x14, 0x1C, 0x90] {
            assert!(matches!(
                parse_video_tag(&[first, 0, 0, 0, 0]),
                Err(FlvError::UnsupportedCodec {
                    track: TrackKind::Video,
                    ..
                })
            ));
        }
        // MP3 (2), Speex (11), PCM (3).
        for first in [0x2F, 0xB6, 0x3F] {
            assert!(matches!(
                parse_audio_tag(&[first, 1, 0]),
                Err(FlvError::UnsupportedCodec {
                    track: TrackKind::Audio,
                    ..
                })
            ));
        }
    }

    #[test]
    fn truncated_input_is_a_typed_error_at_every_length() {
        let config = video_body(0x17, 0, [0, 0, 0], &AVC_RECORD[..17]);
        for len in 0..config.len() {
            assert!(
                matches!(
                    parse_video_tag(&config[..len]),
                    Err(FlvError::Truncated { .. })
                ),
                "length {len}"
            );
        }
        let audio = [0xAF, 0x00, 0x12, 0x10];
        for len in 0..2 {
            assert!(matches!(
                parse_audio_tag(&audio[..len]),
                Err(FlvError::Truncated { .. })
            ));
        }
        for len in 2..audio.len() {
            assert!(matches!(
                parse_audio_tag(&audio[..len]),
                Err(FlvError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn malformed_avc_records_are_refused() {
        let mut wrong_version = AVC_RECORD;
        wrong_version[0] = 0;
        assert!(matches!(
            parse_video_tag(&video_body(0x17, 0, [0; 3], &wrong_version)),
            Err(FlvError::InvalidAvcConfig(_))
        ));
        let no_sps = [
            0x01, 0x64, 0x00, 0x1E, 0xFF, 0xE0, 0x01, 0x00, 0x02, 0x68, 0xEE,
        ];
        assert!(matches!(
            parse_video_tag(&video_body(0x17, 0, [0; 3], &no_sps)),
            Err(FlvError::InvalidAvcConfig(_))
        ));
        assert_eq!(
            parse_video_tag(&video_body(0x17, 7, [0; 3], &[])),
            Err(FlvError::UnknownAvcPacketType(7))
        );
    }

    #[test]
    fn audio_specific_config_is_parsed() {
        // AAC LC, 44.1 kHz (index 4), mono: 00010 0100 0001 000 = 0x12 0x08.
        assert_eq!(
            parse_audio_tag(&[0xAF, 0x00, 0x12, 0x08]),
            Ok(AudioTag::Config(AacConfig {
                object_type: 2,
                sampling_frequency_index: 4,
                channel_configuration: 1
            }))
        );
        // Explicit HE-AAC: SBR(5), core 24 kHz (6), stereo, ext 48 kHz (3), core LC(2):
        // 00101 0110 0010 0011 00010 (pad) = 0x2B 0x11 0x88 0x00.
        assert_eq!(
            parse_audio_tag(&[0xAF, 0x00, 0x2B, 0x11, 0x88, 0x00]),
            Ok(AudioTag::Config(AacConfig {
                object_type: 2,
                sampling_frequency_index: 6,
                channel_configuration: 2
            }))
        );
        // Explicit frequency (index 15) cannot go into ADTS.
        assert!(matches!(
            parse_audio_tag(&[0xAF, 0x00, 0x17, 0x80, 0, 0, 0, 0]),
            Err(FlvError::UnsupportedAacConfig(_))
        ));
        assert_eq!(
            parse_audio_tag(&[0xAF, 0x01, 0xDE, 0xAD]),
            Ok(AudioTag::Frame(&[0xDE, 0xAD]))
        );
        assert_eq!(
            parse_audio_tag(&[0xAF, 0x05]),
            Err(FlvError::UnknownAacPacketType(5))
        );
    }
}
