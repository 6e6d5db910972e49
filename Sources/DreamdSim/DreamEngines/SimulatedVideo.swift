import Foundation

/// A small, valid, playable MP4 (ISO BMFF: `ftyp`, `moov`, `mdat`) of H.264 video, written from
/// scratch: one mid-grey IDR frame (every macroblock Intra 16×16 DC-predicted, no residual) followed by
/// P frames whose macroblocks are all skipped. `frames` frames at `fps` of `width`×`height` take about
/// 1 KB plus a few bytes per frame, whatever the size.
enum SimulatedVideo {
    static func mp4(width: Int = 640, height: Int = 480, frames: Int, fps: Int = 10) -> Data {
        let widthMBs = max(1, (width + 15) / 16)
        let heightMBs = max(1, (height + 15) / 16)
        let frameCount = max(1, frames)
        let sps = nal(type: 7, refIdc: 3, rbsp: spsRBSP(widthMBs: widthMBs, heightMBs: heightMBs))
        let pps = nal(type: 8, refIdc: 3, rbsp: ppsRBSP())
        var samples: [Data] = [lengthPrefixed(nal(type: 5, refIdc: 3, rbsp: idrRBSP(macroblocks: widthMBs * heightMBs)))]
        for index in 1..<frameCount {
            samples.append(lengthPrefixed(nal(type: 1, refIdc: 2, rbsp: pRBSP(frameNum: index % 256, macroblocks: widthMBs * heightMBs))))
        }
        return container(width: widthMBs * 16, height: heightMBs * 16, fps: fps, sps: sps, pps: pps, samples: samples)
    }

    // MARK: H.264 bitstream

    struct BitWriter {
        var bytes: [UInt8] = []
        var current: UInt8 = 0
        var count = 0

        mutating func bit(_ value: Int) {
            current = current << 1 | UInt8(value & 1)
            count += 1
            if count == 8 { bytes.append(current); current = 0; count = 0 }
        }

        mutating func bits(_ value: Int, _ width: Int) {
            for shift in stride(from: width - 1, through: 0, by: -1) { bit(value >> shift) }
        }

        /// Exp-Golomb ue(v).
        mutating func ue(_ value: Int) {
            let code = value + 1
            let length = Int.bitWidth - code.leadingZeroBitCount
            bits(0, length - 1)
            bits(code, length)
        }

        /// Exp-Golomb se(v).
        mutating func se(_ value: Int) { ue(value > 0 ? 2 * value - 1 : -2 * value) }

        /// rbsp_trailing_bits: a one, then zeros to the byte boundary.
        mutating func trailing() -> [UInt8] {
            bit(1)
            while count != 0 { bit(0) }
            return bytes
        }
    }

    static func spsRBSP(widthMBs: Int, heightMBs: Int) -> [UInt8] {
        var w = BitWriter()
        w.bits(66, 8)            // profile_idc: Baseline
        w.bits(0b1100_0000, 8)   // constraint_set0/1: Constrained Baseline
        w.bits(30, 8)            // level_idc 3.0
        w.ue(0)                  // seq_parameter_set_id
        w.ue(4)                  // log2_max_frame_num_minus4 → frame_num is 8 bits
        w.ue(2)                  // pic_order_cnt_type 2: order follows frame_num
        w.ue(1)                  // max_num_ref_frames
        w.bit(0)                 // gaps_in_frame_num_value_allowed_flag
        w.ue(widthMBs - 1)       // pic_width_in_mbs_minus1
        w.ue(heightMBs - 1)      // pic_height_in_map_units_minus1
        w.bit(1)                 // frame_mbs_only_flag
        w.bit(1)                 // direct_8x8_inference_flag
        w.bit(0)                 // frame_cropping_flag
        w.bit(0)                 // vui_parameters_present_flag
        return w.trailing()
    }

    static func ppsRBSP() -> [UInt8] {
        var w = BitWriter()
        w.ue(0)      // pic_parameter_set_id
        w.ue(0)      // seq_parameter_set_id
        w.bit(0)     // entropy_coding_mode_flag: CAVLC
        w.bit(0)     // bottom_field_pic_order_in_frame_present_flag
        w.ue(0)      // num_slice_groups_minus1
        w.ue(0)      // num_ref_idx_l0_default_active_minus1
        w.ue(0)      // num_ref_idx_l1_default_active_minus1
        w.bit(0)     // weighted_pred_flag
        w.bits(0, 2) // weighted_bipred_idc
        w.se(0)      // pic_init_qp_minus26
        w.se(0)      // pic_init_qs_minus26
        w.se(0)      // chroma_qp_index_offset
        w.bit(0)     // deblocking_filter_control_present_flag
        w.bit(0)     // constrained_intra_pred_flag
        w.bit(0)     // redundant_pic_cnt_present_flag
        return w.trailing()
    }

    static func idrRBSP(macroblocks: Int) -> [UInt8] {
        var w = BitWriter()
        w.ue(0)        // first_mb_in_slice
        w.ue(7)        // slice_type: I (all slices)
        w.ue(0)        // pic_parameter_set_id
        w.bits(0, 8)   // frame_num
        w.ue(0)        // idr_pic_id
        w.bit(0)       // no_output_of_prior_pics_flag
        w.bit(0)       // long_term_reference_flag
        w.se(0)        // slice_qp_delta
        for _ in 0..<macroblocks {
            w.ue(3)    // mb_type I_16x16_2_0_0: DC prediction, no coded luma or chroma
            w.ue(0)    // intra_chroma_pred_mode: DC
            w.se(0)    // mb_qp_delta
            w.bit(1)   // Intra16x16DCLevel coeff_token: no coefficients (nC 0)
        }
        return w.trailing()
    }

    static func pRBSP(frameNum: Int, macroblocks: Int) -> [UInt8] {
        var w = BitWriter()
        w.ue(0)               // first_mb_in_slice
        w.ue(5)               // slice_type: P (all slices)
        w.ue(0)               // pic_parameter_set_id
        w.bits(frameNum, 8)   // frame_num
        w.bit(0)              // num_ref_idx_active_override_flag
        w.bit(0)              // ref_pic_list_modification_flag_l0
        w.bit(0)              // adaptive_ref_pic_marking_mode_flag: sliding window
        w.se(0)               // slice_qp_delta
        w.ue(macroblocks)     // mb_skip_run: every macroblock copies the previous frame
        return w.trailing()
    }

    /// A NAL unit: its header byte, then the RBSP with emulation-prevention bytes.
    static func nal(type: Int, refIdc: Int, rbsp: [UInt8]) -> Data {
        var out = Data([UInt8(refIdc << 5 | type)])
        var zeros = 0
        for byte in rbsp {
            if zeros >= 2, byte <= 3 {
                out.append(3)
                zeros = 0
            }
            out.append(byte)
            zeros = byte == 0 ? zeros + 1 : 0
        }
        return out
    }

    static func lengthPrefixed(_ nal: Data) -> Data {
        var out = Data()
        out.append(be32(nal.count))
        out.append(nal)
        return out
    }

    // MARK: ISO BMFF container

    static func be16(_ value: Int) -> Data { Data([UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]) }
    static func be32(_ value: Int) -> Data { Data([UInt8(value >> 24 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]) }

    static func box(_ type: String, _ payload: Data) -> Data {
        var out = be32(8 + payload.count)
        out.append(contentsOf: Array(type.utf8))
        out.append(payload)
        return out
    }

    static func fullBox(_ type: String, version: UInt8 = 0, flags: Int = 0, _ payload: Data) -> Data {
        var body = Data([version, UInt8(flags >> 16 & 0xFF), UInt8(flags >> 8 & 0xFF), UInt8(flags & 0xFF)])
        body.append(payload)
        return box(type, body)
    }

    static let matrix: Data = [0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x4000_0000].reduce(into: Data()) { $0.append(be32($1)) }

    static func container(width: Int, height: Int, fps: Int, sps: Data, pps: Data, samples: [Data]) -> Data {
        let ftyp = box("ftyp", Data("isom".utf8) + be32(512) + Data("isomiso2avc1mp41".utf8))
        func moov(chunkOffset: Int) -> Data {
            let movieTimescale = 1000
            let duration = samples.count * movieTimescale / max(1, fps)
            let mvhd = fullBox("mvhd", be32(0) + be32(0) + be32(movieTimescale) + be32(duration) + be32(0x10000) + be16(0x100)
                                + Data(count: 10) + matrix + Data(count: 24) + be32(2))
            let tkhd = fullBox("tkhd", flags: 3, be32(0) + be32(0) + be32(1) + be32(0) + be32(duration) + Data(count: 8)
                                + be16(0) + be16(0) + be16(0) + be16(0) + matrix + be32(width << 16) + be32(height << 16))
            let mdhd = fullBox("mdhd", be32(0) + be32(0) + be32(fps) + be32(samples.count) + be16(0x55C4) + be16(0))
            let hdlr = fullBox("hdlr", be32(0) + Data("vide".utf8) + Data(count: 12) + Data("VideoHandler\u{0}".utf8))
            let vmhd = fullBox("vmhd", flags: 1, Data(count: 8))
            let dinf = box("dinf", fullBox("dref", be32(1) + fullBox("url ", flags: 1, Data())))
            var avcC = Data([1, 66, 0xC0, 30, 0xFF, 0xE1])
            avcC.append(be16(sps.count) + sps)
            avcC.append(Data([1]) + be16(pps.count) + pps)
            var compressor = Data([11]) + Data("dreamd-sim".utf8) + Data(" ".utf8)
            compressor.append(Data(count: 32 - compressor.count))
            let avc1 = box("avc1", Data(count: 6) + be16(1) + Data(count: 16) + be16(width) + be16(height) + be32(0x0048_0000)
                           + be32(0x0048_0000) + be32(0) + be16(1) + compressor + be16(0x18) + be16(0xFFFF) + box("avcC", avcC))
            let stsd = fullBox("stsd", be32(1) + avc1)
            let stts = fullBox("stts", be32(1) + be32(samples.count) + be32(1))
            let stss = fullBox("stss", be32(1) + be32(1))
            let stsc = fullBox("stsc", be32(1) + be32(1) + be32(samples.count) + be32(1))
            let stsz = fullBox("stsz", be32(0) + be32(samples.count) + samples.reduce(into: Data()) { $0.append(be32($1.count)) })
            let stco = fullBox("stco", be32(1) + be32(chunkOffset))
            let stbl = box("stbl", stsd + stts + stss + stsc + stsz + stco)
            let minf = box("minf", vmhd + dinf + stbl)
            let mdia = box("mdia", mdhd + hdlr + minf)
            return box("moov", mvhd + box("trak", tkhd + mdia))
        }
        let moovSize = moov(chunkOffset: 0).count
        let mdatPayload = samples.reduce(into: Data()) { $0.append($1) }
        return ftyp + moov(chunkOffset: ftyp.count + moovSize + 8) + box("mdat", mdatPayload)
    }
}
