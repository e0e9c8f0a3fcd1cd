// NativeCollective: the JS handle of a Collective (core/collective.h), the membership of a
// data-parallel job. Joining (MPI_Init) and every exchange run on a libuv worker and return
// Promises: a rank waiting for a slow peer never blocks its event loop.
#include "collective_wrap.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common.h"

namespace cmae::napi {

namespace {

// A Promise of work(): run on a worker, result(env) built on the JS thread; a thrown cmae::Error
// rejects with its typed JS error.
class PromiseTask : public Napi::AsyncWorker {
 public:
  PromiseTask(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> result, Napi::Object keep_alive)
      : Napi::AsyncWorker(env, "cmae.collective"), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)),
        result_(std::move(result)) {
    if (!keep_alive.IsEmpty()) keep_ = Napi::Persistent(keep_alive);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }
  void Execute() override {
    try {
      work_();
    } catch (...) {
      error_ = CurrentError();
      failed_ = true;
    }
  }
  void OnOK() override {
    if (failed_) {
      deferred_.Reject(MakeJsError(Env(), error_.kind, error_.message).Value());
      return;
    }
    deferred_.Resolve(result_ ? result_(Env()) : Env().Undefined());
  }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> result_;
  Napi::ObjectReference keep_;
  ErrorInfo error_{};
  bool failed_ = false;
};

Napi::Value Queue(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> result,
                  Napi::Object keep_alive = Napi::Object()) {
  auto* task = new PromiseTask(env, std::move(work), std::move(result), keep_alive);
  Napi::Promise promise = task->Promise();
  task->Queue();
  return promise;
}

}  // namespace

Napi::Function CollectiveWrap::Init(Napi::Env env) {
  return DefineClass(env, "NativeCollective",
                     {InstanceAccessor<&CollectiveWrap::Rank>("rank"), InstanceAccessor<&CollectiveWrap::WorldSize>("worldSize"),
                      InstanceAccessor<&CollectiveWrap::Engine>("engine"), InstanceMethod<&CollectiveWrap::AllgatherBytes>("allgatherBytes"),
                      InstanceMethod<&CollectiveWrap::AbortJob>("abortJob"), InstanceMethod<&CollectiveWrap::Finalize>("finalize")});
}

CollectiveWrap::CollectiveWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CollectiveWrap>(info) {}

CollectiveWrap* CollectiveWrap::FromValue(Napi::Env env, Napi::Value value) {
  if (!value.IsObject()) return nullptr;
  Napi::Object o = value.As<Napi::Object>();
  if (!o.InstanceOf(GetAddonData(env).collective_constructor.Value())) return nullptr;
  return Napi::ObjectWrap<CollectiveWrap>::Unwrap(o);
}

const std::shared_ptr<Collective>& CollectiveWrap::collective() const {
  CMAE_CHECK(collective_ != nullptr, Disposed, "the distributed job was left (finalize)");
  return collective_;
}

Napi::Value CollectiveWrap::Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), collective()->rank()); }
Napi::Value CollectiveWrap::WorldSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), collective()->world_size());
}
Napi::Value CollectiveWrap::Engine(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), collective()->engine()); }

// allgatherBytes(bytes: Uint8Array) → Promise<Uint8Array>: every rank gives the same number of
// bytes; the result holds rank 0's, then rank 1's, ….
Napi::Value CollectiveWrap::AllgatherBytes(const Napi::CallbackInfo& info) {
  return TranslateErrors(info.Env(), [&] {
    std::shared_ptr<Collective> c = collective();
    CMAE_CHECK(info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array, Value,
               "bytes must be a Uint8Array");
    Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    const int64_t n = static_cast<int64_t>(bytes.ByteLength()), W = c->world_size();
    auto buffer = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(n * W));
    std::memcpy(buffer->data() + c->rank() * n, bytes.Data(), static_cast<size_t>(n));
    return Queue(
        info.Env(),
        [c, buffer, n, W] {
          std::vector<int64_t> counts(static_cast<size_t>(W), n), displs(static_cast<size_t>(W));
          for (int64_t r = 0; r < W; ++r) displs[static_cast<size_t>(r)] = r * n;
          c->allgather(buffer->data(), counts, displs, "all-gather of the ranks' start-up records");
        },
        [buffer](Napi::Env env) -> Napi::Value {
          Napi::Uint8Array out = Napi::Uint8Array::New(env, buffer->size());
          std::memcpy(out.Data(), buffer->data(), buffer->size());
          return out;
        });
  });
}

// abortJob(code): ends every rank of the job now (MPI_Abort); does not return.
Napi::Value CollectiveWrap::AbortJob(const Napi::CallbackInfo& info) {
  return TranslateErrors(info.Env(), [&]() -> Napi::Value {
    const int64_t code = IntArg(info, 0, "code");
    collective()->abort_job(static_cast<int>(code));
  });
}

// finalize(): leaves the job (MPI_Finalize waits for every rank to leave too); idempotent.
Napi::Value CollectiveWrap::Finalize(const Napi::CallbackInfo& info) {
  return TranslateErrors(info.Env(), [&] {
    if (!collective_) return info.Env().Undefined();
    std::shared_ptr<Collective> c = std::move(collective_);
    return Queue(info.Env(), [c] { c->finalize(); }, nullptr);
  });
}

// openCollective(pluginPath, timeoutSeconds, bucketFloats) → Promise<NativeCollective>: joins the job.
static Napi::Value OpenCollective(const Napi::CallbackInfo& info) {
  const std::string path = StringArg(info, 0, "pluginPath");
  const double timeout_s = PositiveArg(info, 1, "timeoutSeconds");
  const int64_t bucket = NonNegativeIntArg(info, 2, "bucketFloats");
  auto joined = std::make_shared<std::shared_ptr<Collective>>();
  return Queue(
      info.Env(), [=] { *joined = Collective::open(path, timeout_s, bucket); },
      [joined](Napi::Env env) -> Napi::Value {
        Napi::Object o = GetAddonData(env).collective_constructor.New({});
        CollectiveWrap::Unwrap(o)->set_collective(*joined);
        return o;
      });
}

void RegisterCollective(Napi::Env env, Napi::Object exports) {
  Napi::Function constructor = CollectiveWrap::Init(env);
  GetAddonData(env).collective_constructor = Napi::Persistent(constructor);
  exports.Set("NativeCollective", constructor);
  CMAE_EXPORT(exports, "openCollective", OpenCollective);
}

}  // namespace cmae::napi
