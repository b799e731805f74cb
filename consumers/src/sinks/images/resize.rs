//! Decode (with limits), resize with fast_image_resize (SIMD, Lanczos3), encode. Hostile input
//! fails with a reason and never allocates past the limits: the header's dimensions are checked
//! before decoding, and the decoder itself runs under `image::Limits`.

use std::io::Cursor;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::ImageReader;
use schemas::events::{ImageFormat as OutFormat, ResizeFit};
pub use stores::images::{check_size, probe, ImageLimits, ResizeError};

/// The output dimensions for a source of `sw`x`sh` asked to fit `w`x`h`.
fn target(sw: u32, sh: u32, w: u32, h: u32, fit: ResizeFit) -> (u32, u32) {
    match fit {
        ResizeFit::Exact | ResizeFit::Cover => (w, h),
        ResizeFit::Contain => {
            let scale = (f64::from(w) / f64::from(sw)).min(f64::from(h) / f64::from(sh));
            (
                ((f64::from(sw) * scale).round() as u32).clamp(1, w),
                ((f64::from(sh) * scale).round() as u32).clamp(1, h),
            )
        }
    }
}

/// Decodes `bytes`, resizes to `width`x`height` by `fit`, encodes as `format`. Returns the bytes and
/// their content type.
pub fn resize(
    bytes: &[u8],
    width: u32,
    height: u32,
    fit: ResizeFit,
    format: OutFormat,
    limits: &ImageLimits,
) -> Result<(Vec<u8>, &'static str), ResizeError> {
    check_size(width, height, limits)?;
    let (source_format, sw, sh) = probe(bytes, limits)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), source_format);
    let mut decode_limits = image::Limits::default();
    decode_limits.max_image_width = Some(sw);
    decode_limits.max_image_height = Some(sh);
    decode_limits.max_alloc = Some(limits.max_source_pixels * 4 + 64 * 1024 * 1024);
    reader.limits(decode_limits);
    let decoded = reader
        .decode()
        .map_err(|e| ResizeError::Decode(e.to_string()))?
        .into_rgba8();
    let (sw, sh) = decoded.dimensions();
    let src = Image::from_vec_u8(sw, sh, decoded.into_raw(), PixelType::U8x4)
        .map_err(|e| ResizeError::Decode(e.to_string()))?;
    let (dw, dh) = target(sw, sh, width, height, fit);
    let mut dst = Image::new(dw, dh, PixelType::U8x4);
    let mut options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    if fit == ResizeFit::Cover {
        options = options.fit_into_destination(Some((0.5, 0.5)));
    }
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| ResizeError::Decode(e.to_string()))?;
    let rgba = image::RgbaImage::from_raw(dw, dh, dst.into_vec())
        .ok_or_else(|| ResizeError::Encode("buffer size".into()))?;
    encode(image::DynamicImage::ImageRgba8(rgba), format)
}

/// Encodes as JPEG (quality 85, no alpha), PNG or lossless WebP.
pub fn encode(
    img: image::DynamicImage,
    format: OutFormat,
) -> Result<(Vec<u8>, &'static str), ResizeError> {
    let mut out = Cursor::new(Vec::new());
    let err = |e: image::ImageError| ResizeError::Encode(e.to_string());
    let content_type = match format {
        OutFormat::Jpeg => {
            let rgb = image::DynamicImage::ImageRgb8(img.to_rgb8());
            rgb.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
                &mut out, 85,
            ))
            .map_err(err)?;
            "image/jpeg"
        }
        OutFormat::Png => {
            img.write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
                .map_err(err)?;
            "image/png"
        }
        OutFormat::Webp => {
            img.write_with_encoder(image::codecs::webp::WebPEncoder::new_lossless(&mut out))
                .map_err(err)?;
            "image/webp"
        }
    };
    Ok((out.into_inner(), content_type))
}
