//! Raw AAC frames (as FLV carries them) → ADTS frames (as MPEG-TS stream type 0x0F carries
//! them). The 7-byte header repeats the AudioSpecificConfig in every frame, so a player can
//! start decoding at any segment.

use super::flv::AacConfig;

/// Why a frame could not be wrapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdtsError {
    /// ADTS stores the frame length (header included) in 13 bits.
    #[error("AAC frame of {0} bytes does not fit an ADTS header")]
    FrameTooLarge(usize),
}

/// Length of an ADTS header without CRC.
pub const HEADER_LEN: usize = 7;
/// Largest frame length (header included) the 13-bit field can hold.
const MAX_FRAME_LEN: usize = (1 << 13) - 1;

/// Prepends an ADTS header (MPEG-4, no CRC) to one raw AAC frame.
pub fn to_adts(config: &AacConfig, frame: &[u8]) -> Result<Vec<u8>, AdtsError> {
    let frame_len = HEADER_LEN + frame.len();
    if frame_len > MAX_FRAME_LEN {
        return Err(AdtsError::FrameTooLarge(frame.len()));
    }
    // Both fit their bit fields: object_type is 1..=4, channels 1..=7, frequency index 0..=12
    // (AacConfig is only built by the validating parser).
    let profile = config.object_type - 1;
    let channels = config.channel_configuration;
    let mut adts = Vec::with_capacity(frame_len);
    adts.extend_from_slice(&[
        0xFF,
        0xF1, // sync word, MPEG-4, layer 0, protection absent
        (profile << 6) | (config.sampling_frequency_index << 2) | (channels >> 2),
        ((channels & 0x03) << 6) | ((frame_len >> 11) as u8), // 13-bit length: top 2 bits
        (frame_len >> 3) as u8,                               // middle 8 bits (truncation intended)
        (((frame_len & 0x07) as u8) << 5) | 0x1F,             // low 3 bits, buffer fullness 0x7FF
        0xFC, // buffer fullness low bits, one raw data block
    ]);
    adts.extend_from_slice(frame);
    Ok(adts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_matches_a_hand_computed_one() {
        // LC (profile 1), 44.1 kHz (index 4), stereo, 10 + 7 = 17 bytes:
        // FFF 0 00 1 | 01 0100 0 010 | 0 0 0 0 0000000010001 11111111111 00
        let config = AacConfig {
            object_type: 2,
            sampling_frequency_index: 4,
            channel_configuration: 2,
        };
        let adts = to_adts(&config, &[0xAB; 10]).expect("fits");
        assert_eq!(
            &adts[..HEADER_LEN],
            &[0xFF, 0xF1, 0x50, 0x80, 0x02, 0x3F, 0xFC]
        );
        assert_eq!(&adts[HEADER_LEN..], &[0xAB; 10]);
    }

    #[test]
    fn oversized_frames_are_refused() {
        let config = AacConfig {
            object_type: 2,
            sampling_frequency_index: 3,
            channel_configuration: 1,
        };
        assert!(to_adts(&config, &vec![0; MAX_FRAME_LEN - HEADER_LEN]).is_ok());
        assert_eq!(
            to_adts(&config, &vec![0; MAX_FRAME_LEN - HEADER_LEN + 1]),
            Err(AdtsError::FrameTooLarge(MAX_FRAME_LEN - HEADER_LEN + 1))
        );
    }
}
