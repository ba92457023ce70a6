//! H.264 in FLV (length-prefixed NAL units, parameter sets out of band) → Annex-B access units
//! for MPEG-TS (start codes, parameter sets in band).
//!
//! Every access unit starts with an access unit delimiter: Apple's HLS authoring rules ask for
//! it and some hardware decoders only find picture boundaries by it (ffmpeg's TS muxer adds one
//! for the same reason). Every keyframe carries SPS and PPS in front of its slices, so each
//! segment, which starts at a keyframe, decodes on its own.

use super::flv::AvcConfig;

/// Why an access unit could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum H264Error {
    /// A NAL unit length prefix points past the end of the tag.
    #[error("NAL unit length {length} exceeds the {remaining} bytes left in the tag")]
    TruncatedNalu {
        /// The announced NAL unit length.
        length: usize,
        /// Bytes actually left.
        remaining: usize,
    },
    /// A NAL unit length prefix is cut off at the end of the tag.
    #[error("truncated NAL unit length prefix")]
    TruncatedLength,
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// AUD NAL unit (type 9) with primary_pic_type 7 ("any slice type") and its stop bit.
const ACCESS_UNIT_DELIMITER: [u8; 2] = [0x09, 0xF0];
const NAL_TYPE_IDR: u8 = 5;
const NAL_TYPE_SPS: u8 = 7;
const NAL_TYPE_AUD: u8 = 9;

/// Splits `data` into NAL units using `length_size`-byte big-endian length prefixes.
fn nal_units(data: &[u8], length_size: u8) -> impl Iterator<Item = Result<&[u8], H264Error>> {
    let length_size = usize::from(length_size);
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        if rest.len() < length_size {
            rest = &[];
            return Some(Err(H264Error::TruncatedLength));
        }
        let (prefix, tail) = rest.split_at(length_size);
        let length = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if tail.len() < length {
            let remaining = tail.len();
            rest = &[];
            return Some(Err(H264Error::TruncatedNalu { length, remaining }));
        }
        let (nalu, tail) = tail.split_at(length);
        rest = tail;
        Some(Ok(nalu))
    })
}

fn nal_type(nalu: &[u8]) -> Option<u8> {
    nalu.first().map(|b| b & 0x1F)
}

/// One converted access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// Annex-B bytes: AUD, then (for keyframes) SPS/PPS, then the picture's NAL units.
    pub annex_b: Vec<u8>,
    /// The access unit starts a closed GOP (IDR slice) or the FLV tag is marked as keyframe,
    /// so a segment may start here.
    pub keyframe: bool,
}

/// Converts one FLV AVC NALU packet into an Annex-B access unit.
///
/// `flv_keyframe` is the tag's FrameType flag; an IDR slice makes the access unit a keyframe
/// even when the encoder forgot the flag. Input AUDs are dropped (ours comes first), empty NAL
/// units are skipped. Returns `Ok(None)` when nothing decodable is left.
pub fn to_annex_b(
    config: &AvcConfig,
    data: &[u8],
    flv_keyframe: bool,
) -> Result<Option<AccessUnit>, H264Error> {
    let mut has_idr = false;
    let mut has_sps = false;
    let mut payload_len = 0;
    for nalu in nal_units(data, config.nalu_length_size) {
        let nalu = nalu?;
        match nal_type(nalu) {
            None | Some(NAL_TYPE_AUD) => continue,
            Some(NAL_TYPE_IDR) => has_idr = true,
            Some(NAL_TYPE_SPS) => has_sps = true,
            Some(_) => {}
        }
        payload_len += START_CODE.len() + nalu.len();
    }
    if payload_len == 0 {
        return Ok(None);
    }
    let keyframe = has_idr || flv_keyframe;
    let insert_parameter_sets = keyframe && !has_sps;

    let parameter_sets = config
        .sps
        .iter()
        .chain(&config.pps)
        .filter(|set| !set.is_empty());
    let parameter_len: usize = if insert_parameter_sets {
        parameter_sets
            .clone()
            .map(|set| START_CODE.len() + set.len())
            .sum()
    } else {
        0
    };
    let mut annex_b = Vec::with_capacity(
        START_CODE.len() + ACCESS_UNIT_DELIMITER.len() + parameter_len + payload_len,
    );
    annex_b.extend_from_slice(&START_CODE);
    annex_b.extend_from_slice(&ACCESS_UNIT_DELIMITER);
    if insert_parameter_sets {
        for set in parameter_sets {
            annex_b.extend_from_slice(&START_CODE);
            annex_b.extend_from_slice(set);
        }
    }
    // Already validated above; the second pass cannot fail.
    for nalu in nal_units(data, config.nalu_length_size).flatten() {
        if matches!(nal_type(nalu), None | Some(NAL_TYPE_AUD)) {
            continue;
        }
        annex_b.extend_from_slice(&START_CODE);
        annex_b.extend_from_slice(nalu);
    }
    Ok(Some(AccessUnit { annex_b, keyframe }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(length_size: u8) -> AvcConfig {
        AvcConfig {
            nalu_length_size: length_size,
            sps: vec![vec![0x67, 0xAA]],
            pps: vec![vec![0x68, 0xBB]],
        }
    }

    #[test]
    fn idr_gets_aud_and_parameter_sets() {
        // Input: AUD, SEI (6), IDR slice (0x65).
        let data = [
            0, 0, 0, 2, 0x09, 0xF0, 0, 0, 0, 2, 0x06, 0x01, 0, 0, 0, 3, 0x65, 0x88, 0x84,
        ];
        let unit = to_annex_b(&config(4), &data, false)
            .expect("valid")
            .expect("not empty");
        assert!(unit.keyframe);
        #[rustfmt::skip]
        let expected = [
            0, 0, 0, 1, 0x09, 0xF0,
            0, 0, 0, 1, 0x67, 0xAA,
            0, 0, 0, 1, 0x68, 0xBB,
            0, 0, 0, 1, 0x06, 0x01,
            0, 0, 0, 1, 0x65, 0x88, 0x84,
        ];
        assert_eq!(unit.annex_b, expected);
    }

    #[test]
    fn non_idr_gets_only_aud_and_respects_two_byte_lengths() {
        let data = [0, 3, 0x41, 0x9A, 0x02];
        let unit = to_annex_b(&config(2), &data, false)
            .expect("valid")
            .expect("not empty");
        assert!(!unit.keyframe);
        assert_eq!(
            unit.annex_b,
            [0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x41, 0x9A, 0x02]
        );
    }

    #[test]
    fn in_band_sps_is_not_duplicated() {
        let data = [0, 2, 0x67, 0x11, 0, 2, 0x68, 0x22, 0, 2, 0x65, 0x00];
        let unit = to_annex_b(&config(2), &data, true)
            .expect("valid")
            .expect("not empty");
        assert_eq!(
            unit.annex_b,
            [
                0, 0, 0, 1, 9, 0xF0, 0, 0, 0, 1, 0x67, 0x11, 0, 0, 0, 1, 0x68, 0x22, 0, 0, 0, 1,
                0x65, 0
            ]
        );
    }

    #[test]
    fn truncated_nal_units_are_errors() {
        assert_eq!(
            to_annex_b(&config(4), &[0, 0, 0, 9, 0x65, 0x00], false),
            Err(H264Error::TruncatedNalu {
                length: 9,
                remaining: 2
            })
        );
        assert_eq!(
            to_annex_b(&config(4), &[0, 0], false),
            Err(H264Error::TruncatedLength)
        );
        assert_eq!(to_annex_b(&config(4), &[], true), Ok(None));
        assert_eq!(to_annex_b(&config(4), &[0, 0, 0, 0], true), Ok(None));
    }
}
