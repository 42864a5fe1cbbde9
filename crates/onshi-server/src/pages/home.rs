//! `/`: the top page — where to go for the guidance, a site's own status, the operator's
//! dashboard and the reception emulator.

use axum::extract::Query;
use axum::response::Response;
use maud::html;

use super::{LangQuery, href, layout};

/// `GET /`.
pub async fn page(Query(q): Query<LangQuery>) -> Response {
    let lang = q.lang();
    let body = html! {
        h1 { (lang.pick("オンライン資格確認等システム　アプリケーション更新", "Online qualification confirmation system: application update")) }
        p { (lang.pick(
            "資格確認端末と顔認証付きカードリーダーの更新アプリケーションの配信状況と、医療機関・薬局で行っていただきたいことをご案内します。",
            "The distribution of the update to qualification confirmation terminals and face-authentication card readers, and what sites need to do."
        )) }
        div class="panels" {
            a class="panel" id="to-guidance" href=(href("/guidance", lang)) {
                h2 { (lang.pick("配信のご案内", "Guidance")) }
                p { (lang.pick("配信期間（日時・曜日）、行っていただきたいこと、エラーが表示された場合、コールセンター", "The schedule, what to do, what the errors look like, the call centre")) }
            }
            a class="panel" id="to-site" href=(href("/site", lang)) {
                h2 { (lang.pick("医療機関・薬局の方", "For clinics and pharmacies")) }
                p { (lang.pick("医療機関コードとアクセスキーで、端末ごとの更新状況と今夜・明朝の対応を確認できます", "Your devices' status and what to do tonight or tomorrow (institution code and access key)")) }
            }
            a class="panel" id="to-operator" href=(href("/operator", lang)) {
                h2 { (lang.pick("運用者", "Operator")) }
                p { (lang.pick("進捗（都道府県・種別・メーカー別）、対応が必要な施設、キャンペーンの操作", "Progress by prefecture, kind and vendor; sites needing action; campaign controls")) }
            }
            a class="panel" id="to-reception" href=(href("/reception", lang)) {
                h2 { (lang.pick("受付の再現", "Reception emulator")) }
                p { (lang.pick("再起動していない資格確認端末で患者さんに表示される画面（メーカー別）", "What a patient meets on a terminal that was not restarted, per reader vendor")) }
            }
        }
    };
    layout(lang.pick("トップ", "Home"), lang, "/", body)
}
