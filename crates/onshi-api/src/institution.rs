//! The institution API (`/api/v1/institutions/{code}/…`, the site's access key): what a site's
//! staff, their IT vendor and the online billing screen read about their own devices.

use onshi_core::deployment::DeploymentState;
use onshi_core::institution::InstitutionCode;
use onshi_core::lang::Lang;
use onshi_core::notice::NoticeKind;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::admin::Device;

/// One of the site's devices and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SiteDevice {
    #[serde(flatten)]
    pub device: Device,
    /// The campaign the device is in, if any.
    pub campaign: Option<String>,
    pub state: Option<DeploymentState>,
    /// A terminal installed the update and waits for its restart (再起動が必要).
    pub restart_required: bool,
    /// The state and what to do about the device now (the headline of
    /// `onshi_core::guidance::device_advice`), as the site page says them, in Japanese:
    /// 「インストール完了（再起動が必要）：翌朝、資格確認端末を再起動してください」.
    pub label_ja: Option<String>,
}

/// A site's devices.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SiteStatus {
    pub code: InstitutionCode,
    pub name: String,
    pub devices: Vec<SiteDevice>,
}

/// `GET /api/v1/institutions/{code}/notices` options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NoticesQuery {
    pub lang: Option<Lang>,
}

/// One notice in force for a site, as the billing screen shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BillingNotice {
    pub campaign: String,
    pub kind: NoticeKind,
    pub title: String,
    pub message: String,
}

/// The notices in force for a site now (オンライン請求時の画面で通知).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BillingNotices {
    pub code: InstitutionCode,
    pub name: String,
    #[schema(format = DateTime)]
    pub generated_at: String,
    pub notices: Vec<BillingNotice>,
}
