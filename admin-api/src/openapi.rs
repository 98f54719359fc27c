//! The OpenAPI document: generated from the handlers' `#[utoipa::path]` annotations, then
//! every operation gets the bearer requirement and the error responses of the spec, so the
//! document says what the API really answers (schemathesis checks it in the test command).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, ResponseBuilder, SecurityRequirement};
use utoipa::{OpenApi as _, PartialSchema, ToSchema};

use crate::error::ErrorBody;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "SSN admin API",
        version = "1",
        description = "Beneficiaries, programs, cards, E-Warong, disbursement and audit of the SSN card program (Peraturan Wali Kota Samarinda 70/2025). Amounts are rupiah strings with two decimals; dates are YYYY-MM-DD; times are WITA (UTC+8)."
    ),
    servers((url = "/api/v1")),
    components(schemas(ErrorBody))
)]
struct Base;

/// The document's fixed part.
pub(crate) fn base() -> OpenApi {
    Base::openapi()
}

/// Adds security and the error answers to every operation.
pub(crate) fn finish(mut api: OpenApi) -> OpenApi {
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components
        .schemas
        .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
    let errors = [
        ("400", "Malformed request"),
        ("401", "No token, or an unknown one"),
        ("403", "The token's role may not do this"),
        ("404", "Not found"),
        (
            "409",
            "Conflict: duplicate, wrong state, or a replayed key with other content",
        ),
        ("422", "Refused by a business rule"),
        ("503", "A store cannot be reached; nothing changed"),
    ];
    for (path, item) in api.paths.paths.iter_mut() {
        // The public summary is for anyone, with no token.
        let public = path.starts_with("/public/");
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            if !public {
                operation.security = Some(vec![SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
            }
            for (status, description) in errors {
                if public && matches!(status, "400" | "401" | "403" | "404" | "409" | "422") {
                    continue;
                }
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| {
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(description)
                                .content(
                                    "application/json",
                                    ContentBuilder::new()
                                        .schema(Some(RefOr::Ref(
                                            utoipa::openapi::Ref::from_schema_name("ErrorBody"),
                                        )))
                                        .build(),
                                )
                                .build(),
                        )
                    });
            }
        }
    }
    api
}

/// The document as served.
pub fn openapi() -> OpenApi {
    finish(crate::routes::api().split_for_parts().1)
}
