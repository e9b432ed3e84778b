// The time loops of the plain recurrent layer as two TensorFlow CPU kernels.
//
//   forward:   s(n) = phi(x(n) W_x + b + s(n-1) W_s)
//   backward:  G(n) = dS(n) + dA(n+1) W_s^T,   dA(n) = G(n) * phi'(s(n)),
//              dW_x = sum_n x(n)^T dA(n),  dW_s = sum_n s(n-1)^T dA(n),  db = sum_n dA(n)
//
// Why kernels: on a CPU each step is one small product ([batch, units] x [units, units]).
// As TF graph ops a step also pays the executor for the add and the activation (about as
// much as the product itself), and the product cannot use both cores without a hand-off
// per step. Here the batch rows are split once into one shard per worker thread: rows
// never interact in the recursion, so each thread runs all steps for its rows without
// synchronising. Each shard also computes its part of x W_x + b before its loop, and of
// db, dW_s and dW_x (one large product each) after it. dx, when needed, stays in TF.
//
// Tensors are batch-major ([batch, time, units]) like the layer's inputs and outputs, so
// the layer transposes nothing. Built on first use by seqapps/layers/native.py (the
// compiler with TF's own flags) and used for training steps only: graphs traced for
// inference and export keep to standard TF ops.

#include <algorithm>
#include <initializer_list>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace seqapps {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::shape_inference::InferenceContext;

enum class Activation { kTanh, kRelu, kSigmoid, kLinear };

tensorflow::Status ParseActivation(const std::string& name, Activation* out) {
  if (name == "tanh") *out = Activation::kTanh;
  else if (name == "relu") *out = Activation::kRelu;
  else if (name == "sigmoid") *out = Activation::kSigmoid;
  else if (name == "linear") *out = Activation::kLinear;
  else return tensorflow::errors::InvalidArgument("activation must be tanh, relu, sigmoid or linear, got ", name);
  return tensorflow::OkStatus();
}

template <typename T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstMap = Eigen::Map<const Matrix<T>>;
template <typename T>
using MutableMap = Eigen::Map<Matrix<T>>;

// phi applied in place.
template <typename T>
void Apply(Activation activation, Matrix<T>* a) {
  switch (activation) {
    case Activation::kTanh: *a = a->array().tanh(); break;
    case Activation::kRelu: *a = a->array().max(T(0)); break;
    case Activation::kSigmoid: *a = a->array().logistic(); break;
    case Activation::kLinear: break;
  }
}

// dA = G * phi'(a), with phi'(a) written from s = phi(a) (exact for these four).
template <typename T, typename States, typename Out>
void TimesDerivative(Activation activation, const Matrix<T>& g, const States& s, Out& d_a) {
  switch (activation) {
    case Activation::kTanh: d_a = g.array() * (T(1) - s.array().square()); break;
    case Activation::kRelu: d_a = (s.array() > T(0)).select(g.array(), T(0)); break;
    case Activation::kSigmoid: d_a = g.array() * s.array() * (T(1) - s.array()); break;
    case Activation::kLinear: d_a = g; break;
  }
}

// How many shards ForEachRowShard makes: one per worker thread, at most one per row.
int64_t RowShards(OpKernelContext* context, int64_t rows) {
  auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
  return std::max<int64_t>(1, std::min<int64_t>(pool->NumThreads(), rows));
}

// Runs fn(shard, first_row, end_row) for each of RowShards(rows) shards of the batch rows.
// (Measured and not kept: more shards than threads handed out from a counter, and all
// shards on the pool with this thread waiting; neither was faster on 2 cores.)
template <typename Fn>
void ForEachRowShard(OpKernelContext* context, int64_t rows, Fn fn) {
  auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
  const int64_t shards = RowShards(context, rows);
  // A huge cost per unit makes ParallelFor give every shard its own task.
  pool->ParallelFor(shards, int64_t{1} << 40, [&](int64_t begin, int64_t end) {
    for (int64_t shard = begin; shard < end; ++shard) {
      fn(shard, rows * shard / shards, rows * (shard + 1) / shards);
    }
  });
}

// Rows (b, n) of a batch-major [batch, time, units] tensor for a shard of batch rows at
// step n: `rows` rows `time * units` apart.
template <typename T>
using ConstStepRows = Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using StepRows = Eigen::Map<Matrix<T>, 0, Eigen::OuterStride<>>;

template <typename T>
ConstStepRows<T> RowsAt(const T* base, int64_t first, int64_t rows, int64_t step, int64_t steps,
                        int64_t units) {
  return ConstStepRows<T>(base + (first * steps + step) * units, rows, units,
                          Eigen::OuterStride<>(steps * units));
}

template <typename T>
StepRows<T> RowsAt(T* base, int64_t first, int64_t rows, int64_t step, int64_t steps, int64_t units) {
  return StepRows<T>(base + (first * steps + step) * units, rows, units,
                     Eigen::OuterStride<>(steps * units));
}

tensorflow::Status CheckShape(const Tensor& tensor, const char* name,
                              std::initializer_list<int64_t> expected) {
  bool ok = tensor.dims() == static_cast<int>(expected.size());
  int i = 0;
  for (int64_t size : expected) ok = ok && tensor.dim_size(i++) == size;
  if (ok) return tensorflow::OkStatus();
  std::string want = "[";
  for (int64_t size : expected) want += (want.size() > 1 ? ", " : "") + std::to_string(size);
  return tensorflow::errors::InvalidArgument(name, " must be ", want, "], got ",
                                             tensor.shape().DebugString());
}

// Batch-major throughout ([batch, time, units], as Keras layers take and give
// sequences), so the layer transposes nothing.
template <typename T>
class RecurrenceForward : public OpKernel {
 public:
  explicit RecurrenceForward(OpKernelConstruction* context) : OpKernel(context) {
    std::string name;
    OP_REQUIRES_OK(context, context->GetAttr("activation", &name));
    OP_REQUIRES_OK(context, ParseActivation(name, &activation_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& inputs = context->input(0);
    const Tensor& kernel = context->input(1);
    const Tensor& bias = context->input(2);
    const Tensor& recurrent = context->input(3);
    const Tensor& initial = context->input(4);
    OP_REQUIRES(context, inputs.dims() == 3,
                tensorflow::errors::InvalidArgument("inputs must be [batch, time, features], got ",
                                                    inputs.shape().DebugString()));
    const int64_t batch = inputs.dim_size(0), steps = inputs.dim_size(1),
                  features = inputs.dim_size(2);
    OP_REQUIRES(context, kernel.dims() == 2 && kernel.dim_size(0) == features,
                tensorflow::errors::InvalidArgument("kernel must be [", features, ", units], got ",
                                                    kernel.shape().DebugString()));
    const int64_t units = kernel.dim_size(1);
    OP_REQUIRES_OK(context, CheckShape(bias, "bias", {units}));
    OP_REQUIRES_OK(context, CheckShape(recurrent, "recurrent_kernel", {units, units}));
    OP_REQUIRES_OK(context, CheckShape(initial, "initial_state", {batch, units}));
    Tensor* states = nullptr;
    Tensor* final_state = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
                                0, tensorflow::TensorShape({batch, steps, units}), &states));
    OP_REQUIRES_OK(context, context->allocate_output(1, initial.shape(), &final_state));
    if (steps == 0 || batch == 0 || units == 0) {
      final_state->flat<T>() = initial.flat<T>();  // an empty sequence keeps s(0)
      return;
    }

    const T* x = inputs.flat<T>().data();
    const T* w_x = kernel.flat<T>().data();
    const T* b = bias.flat<T>().data();
    const T* w = recurrent.flat<T>().data();
    const T* s0 = initial.flat<T>().data();
    T* out = states->flat<T>().data();
    T* out_final = final_state->flat<T>().data();
    const Activation activation = activation_;
    ForEachRowShard(context, batch, [&](int64_t, int64_t first, int64_t end) {
      const int64_t rows = end - first;
      // x W_x + b for all of this shard's steps as one product, written where the
      // states go: step n reads its projection there before writing s(n) over it.
      MutableMap<T> projected(out + first * steps * units, rows * steps, units);
      projected.noalias() = ConstMap<T>(x + first * steps * features, rows * steps, features) *
                            ConstMap<T>(w_x, features, units);
      projected.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(b, units);
      const ConstMap<T> w_s(w, units, units);
      Matrix<T> state = ConstMap<T>(s0 + first * units, rows, units);
      Matrix<T> a(rows, units);
      for (int64_t n = 0; n < steps; ++n) {
        a.noalias() = state * w_s;
        a += RowsAt(const_cast<const T*>(out), first, rows, n, steps, units);
        Apply(activation, &a);
        state.swap(a);
        RowsAt(out, first, rows, n, steps, units) = state;
      }
      MutableMap<T>(out_final + first * units, rows, units) = state;
    });
  }

 private:
  Activation activation_;
};

template <typename T>
class RecurrenceBackward : public OpKernel {
 public:
  explicit RecurrenceBackward(OpKernelConstruction* context) : OpKernel(context) {
    std::string name;
    OP_REQUIRES_OK(context, context->GetAttr("activation", &name));
    OP_REQUIRES_OK(context, ParseActivation(name, &activation_));
    OP_REQUIRES_OK(context, context->GetAttr("truncate", &truncate_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& inputs = context->input(0);
    const Tensor& states = context->input(1);
    const Tensor& kernel = context->input(2);
    const Tensor& initial = context->input(3);
    const Tensor& d_states = context->input(4);
    const Tensor& d_final = context->input(5);
    OP_REQUIRES(context, states.dims() == 3,
                tensorflow::errors::InvalidArgument("states must be [batch, time, units], got ",
                                                    states.shape().DebugString()));
    const int64_t batch = states.dim_size(0), steps = states.dim_size(1), units = states.dim_size(2);
    OP_REQUIRES_OK(context, CheckShape(kernel, "recurrent_kernel", {units, units}));
    OP_REQUIRES_OK(context, CheckShape(initial, "initial_state", {batch, units}));
    OP_REQUIRES_OK(context, CheckShape(d_final, "d_final", {batch, units}));
    OP_REQUIRES(context, inputs.dims() == 3 && inputs.dim_size(0) == batch && inputs.dim_size(1) == steps,
                tensorflow::errors::InvalidArgument("inputs must be [", batch, ", ", steps,
                                                    ", features], got ", inputs.shape().DebugString()));
    const int64_t features = inputs.dim_size(2);
    // d_states is either shaped like states or empty: only d_final comes from outside.
    const bool has_d_states = d_states.NumElements() > 0;
    OP_REQUIRES(context, !has_d_states || d_states.shape() == states.shape(),
                tensorflow::errors::InvalidArgument("d_states must be empty or shaped like states ",
                                                    states.shape().DebugString(), ", got ",
                                                    d_states.shape().DebugString()));
    Tensor *d_pre = nullptr, *d_initial = nullptr, *d_kernel = nullptr, *d_recurrent = nullptr,
           *d_bias = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, states.shape(), &d_pre));
    OP_REQUIRES_OK(context, context->allocate_output(1, d_final.shape(), &d_initial));
    OP_REQUIRES_OK(context, context->allocate_output(
                                2, tensorflow::TensorShape({features, units}), &d_kernel));
    OP_REQUIRES_OK(context, context->allocate_output(3, kernel.shape(), &d_recurrent));
    OP_REQUIRES_OK(context, context->allocate_output(4, tensorflow::TensorShape({units}), &d_bias));
    d_kernel->flat<T>().setZero();
    d_recurrent->flat<T>().setZero();
    d_bias->flat<T>().setZero();
    if (steps == 0 || batch == 0 || units == 0) {
      d_initial->flat<T>() = d_final.flat<T>();
      return;
    }

    const T* x = inputs.flat<T>().data();
    const T* s = states.flat<T>().data();
    const T* w = kernel.flat<T>().data();
    const T* s0 = initial.flat<T>().data();
    const T* ds = has_d_states ? d_states.flat<T>().data() : nullptr;
    const T* df = d_final.flat<T>().data();
    T* out = d_pre->flat<T>().data();
    T* out_initial = d_initial->flat<T>().data();
    const Activation activation = activation_;
    const int64_t truncate = truncate_;
    // Each shard sums db = sum_n dA(n) while dA(n) is in cache, and after its loop its
    // part of dW_s = sum_n s(n-1)^T dA(n); the parts are added at the end.
    const int64_t shards = RowShards(context, batch);
    std::vector<Matrix<T>> recurrent_sums(shards), kernel_sums(shards);
    std::vector<Eigen::Matrix<T, 1, Eigen::Dynamic>> bias_sums(
        shards, Eigen::Matrix<T, 1, Eigen::Dynamic>::Zero(units));
    ForEachRowShard(context, batch, [&](int64_t shard, int64_t first, int64_t end) {
      const int64_t rows = end - first;
      const Matrix<T> w_t = ConstMap<T>(w, units, units).transpose();
      // carry: the gradient reaching s(n) through s(n+1) (and, at the last step, d_final).
      Matrix<T> carry = ConstMap<T>(df + first * units, rows, units);
      Matrix<T> total(rows, units), d_a(rows, units);
      for (int64_t n = steps - 1; n >= 0; --n) {
        if (has_d_states) {
          total = carry + RowsAt(ds, first, rows, n, steps, units);
        } else {
          total.swap(carry);
        }
        TimesDerivative<T>(activation, total, RowsAt(s, first, rows, n, steps, units), d_a);
        RowsAt(out, first, rows, n, steps, units) = d_a;
        bias_sums[shard] += d_a.colwise().sum();
        if (truncate > 0 && n % truncate == 0 && n != 0) {
          // Truncated BPTT: the path from step n back to s(n-1) is cut.
          carry.setZero(rows, units);
        } else {
          carry.noalias() = d_a * w_t;
        }
      }
      MutableMap<T>(out_initial + first * units, rows, units) = carry;

      // dW_s for this shard as one large product: in the shard's rows (b, n) of states
      // and dA, laid out batch-major, row r of states is s(n) and row r + 1 of dA is
      // dA(n+1), so states[r]^T dA[r+1] summed over r is the sum wanted, except at the
      // seams between sequences, where s(T) of one pairs with dA(1) of the next: those
      // pairs are taken out again, and s(0)^T dA(1) of each sequence is added.
      const int64_t flat_rows = rows * steps;
      Matrix<T>& sum = recurrent_sums[shard];
      sum.noalias() = ConstMap<T>(s + first * steps * units, flat_rows - 1, units).transpose() *
                      ConstMap<T>(out + (first * steps + 1) * units, flat_rows - 1, units);
      if (rows > 1) {
        sum.noalias() -= RowsAt(s, first, rows - 1, steps - 1, steps, units).transpose() *
                         RowsAt(const_cast<const T*>(out), first + 1, rows - 1, 0, steps, units);
      }
      sum.noalias() += ConstMap<T>(s0 + first * units, rows, units).transpose() *
                       RowsAt(const_cast<const T*>(out), first, rows, 0, steps, units);
      // dW_x = sum_n x(n)^T dA(n): rows of x and dA line up, one product.
      kernel_sums[shard].noalias() =
          ConstMap<T>(x + first * steps * features, flat_rows, features).transpose() *
          ConstMap<T>(out + first * steps * units, flat_rows, units);
    });
    MutableMap<T> kernel_total(d_kernel->flat<T>().data(), features, units);
    MutableMap<T> recurrent_total(d_recurrent->flat<T>().data(), units, units);
    Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>> bias_total(d_bias->flat<T>().data(), units);
    for (int64_t shard = 0; shard < shards; ++shard) {
      kernel_total += kernel_sums[shard];
      recurrent_total += recurrent_sums[shard];
      bias_total += bias_sums[shard];
    }
  }

 private:
  Activation activation_;
  int64_t truncate_;
};

}  // namespace seqapps

REGISTER_OP("SeqappsRecurrenceForward")
    .Input("inputs: T")
    .Input("kernel: T")
    .Input("bias: T")
    .Input("recurrent_kernel: T")
    .Input("initial_state: T")
    .Output("states: T")
    .Output("final_state: T")
    .Attr("activation: string")
    .Attr("T: {float, double}")
    .SetShapeFn([](seqapps::InferenceContext* c) {
      c->set_output(0, c->MakeShape({c->Dim(c->input(0), 0), c->Dim(c->input(0), 1),
                                     c->Dim(c->input(1), 1)}));
      c->set_output(1, c->input(4));
      return tensorflow::OkStatus();
    })
    .Doc("s(n) = phi(x(n) kernel + bias + s(n-1) recurrent_kernel), batch-major [batch, time, .].");

REGISTER_OP("SeqappsRecurrenceBackward")
    .Input("inputs: T")
    .Input("states: T")
    .Input("recurrent_kernel: T")
    .Input("initial_state: T")
    .Input("d_states: T")
    .Input("d_final: T")
    .Output("d_pre_activation: T")
    .Output("d_initial_state: T")
    .Output("d_kernel: T")
    .Output("d_recurrent_kernel: T")
    .Output("d_bias: T")
    .Attr("activation: string")
    .Attr("truncate: int >= 0 = 0")
    .Attr("T: {float, double}")
    .SetShapeFn([](seqapps::InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(5));
      c->set_output(2, c->Matrix(c->Dim(c->input(0), 2), c->Dim(c->input(1), 2)));
      c->set_output(3, c->input(2));
      c->set_output(4, c->Vector(c->Dim(c->input(1), 2)));
      return tensorflow::OkStatus();
    })
    .Doc("BPTT through the recursion: dLoss/da(n) for all steps, dLoss/ds(0), dW_x, dW_s, db.");

#define SEQAPPS_REGISTER(type)                                                              \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("SeqappsRecurrenceForward").Device(tensorflow::DEVICE_CPU).TypeConstraint<type>("T"), \
      seqapps::RecurrenceForward<type>);                                                     \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("SeqappsRecurrenceBackward").Device(tensorflow::DEVICE_CPU).TypeConstraint<type>("T"), \
      seqapps::RecurrenceBackward<type>);

SEQAPPS_REGISTER(float)
SEQAPPS_REGISTER(double)
